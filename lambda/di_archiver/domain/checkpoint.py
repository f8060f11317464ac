"""The per-organisation checkpoint: the end of the newest closed bucket.

Document (JSON, one per org in SSM or the local checkpoint file)::

    {"schema_version": 1, "closed_through": "<RFC3339>", "bucket_minutes": 60,
     "updated_at": "<RFC3339>", "archive": "s3://bucket/prefix",
     "archived_from": "<RFC3339>"}

``closed_through`` means: every bucket ending at or before it is final in the archive (or lies
before the first run's backfill start). It only ever moves forward, and only after every object
of the buckets it covers was written.

``archive`` names the archive the checkpoint belongs to (``s3://bucket/prefix`` or
``file:///dir/prefix``). A run for another archive refuses it: otherwise a new archive sharing the
checkpoint path would start at the old archive's position and never backfill. The field is
optional within schema 1 (an additive change older readers ignore): a document without it is
accepted and gains it on the next save.

``archived_from`` is the backfill start the first run pinned: where the archive begins. Sealing
writes manifests only for days from there on (a manifest for a day nobody archived would vouch
for nothing). Optional like ``archive``; kept by every later save.

``open_buckets`` lets a run read each event of an open bucket once: for each bucket past
``closed_through`` that is archived up to a high-water mark, ``{"start", "through", "events"}``
says that DI returned ``events`` events in ``[start, through)`` when they were archived. The next
run counts that range again and fetches only ``[through, now - lag)`` when DI's count has not
moved; a moved count (late events) re-reads the whole bucket, and so does the run that closes
it. Losing this state only costs reads: a bucket without an entry is read whole. Optional within
schema 1 and replaced by every save of a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from di_archiver.domain.planning import NS_PER_MINUTE
from di_archiver.domain.ports import CheckpointStore
from di_archiver.errors import CheckpointError, SettingsError
from di_archiver.timestamps import NS_PER_MS, format_timestamp_ns, parse_timestamp_ns

CHECKPOINT_SCHEMA_VERSION = 1
_MINUTES_PER_DAY = 1440
# SSM's standard tier holds 4 KB; an entry is under 100 bytes. Buckets beyond the newest this
# many are read whole, which is only slower.
MAX_OPEN_BUCKETS = 24


def _marks_hint(org_id: str) -> str:
    return (
        f"remove open_buckets from the checkpoint of org {org_id}; without it the next run "
        "reads its open buckets whole, which costs reads and loses nothing"
    )


def _fix_hint(org_id: str) -> str:
    return (
        f"fix or delete the checkpoint of org {org_id}; deleting it makes the next run backfill "
        "the lookback window again, which rewrites buckets without losing archived events"
    )


class OpenBucket(Struct, frozen=True):
    """DI returned ``events`` events in ``[start, through)`` of an open bucket, all archived."""

    start_ns: int
    through_ns: int
    events: int

    def to_document(self) -> dict[str, Any]:
        return {
            "start": format_timestamp_ns(self.start_ns),
            "through": format_timestamp_ns(self.through_ns),
            "events": self.events,
        }


class Checkpoint(Struct, frozen=True):
    """A validated checkpoint document."""

    closed_through_ns: int
    bucket_minutes: int
    updated_at_ns: int
    schema_version: int = CHECKPOINT_SCHEMA_VERSION
    archive: str | None = None
    archived_from_ns: int | None = None
    open_buckets: tuple[OpenBucket, ...] = ()

    @property
    def bucket_ns(self) -> int:
        return self.bucket_minutes * NS_PER_MINUTE

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema_version": self.schema_version,
            "closed_through": format_timestamp_ns(self.closed_through_ns),
            "bucket_minutes": self.bucket_minutes,
            "updated_at": format_timestamp_ns(self.updated_at_ns),
        }
        if self.archive is not None:
            document["archive"] = self.archive
        if self.archived_from_ns is not None:
            document["archived_from"] = format_timestamp_ns(self.archived_from_ns)
        if self.open_buckets:
            document["open_buckets"] = [bucket.to_document() for bucket in self.open_buckets]
        return document

    @classmethod
    def from_document(cls, document: object, *, org_id: str) -> Checkpoint:
        """Validate a stored document; any problem is a CheckpointError saying what to do."""
        if not isinstance(document, Mapping):
            raise CheckpointError(
                f"checkpoint of org {org_id} is not a JSON object; " + _fix_hint(org_id)
            )
        version = document.get("schema_version")
        if type(version) is not int:
            raise CheckpointError(
                f"checkpoint of org {org_id} has no integer schema_version; " + _fix_hint(org_id)
            )
        if version != CHECKPOINT_SCHEMA_VERSION:
            raise CheckpointError(
                f"checkpoint of org {org_id} has schema_version {version}, this di-archiver "
                f"understands {CHECKPOINT_SCHEMA_VERSION}; upgrade di-archiver, or "
                + _fix_hint(org_id)
            )
        minutes = document.get("bucket_minutes")
        if type(minutes) is not int or minutes < 1 or _MINUTES_PER_DAY % minutes:
            raise CheckpointError(
                f"checkpoint of org {org_id} has an invalid bucket_minutes (must divide 1440); "
                + _fix_hint(org_id)
            )
        closed_through = _timestamp(document, "closed_through", org_id=org_id, required=True)
        assert closed_through is not None  # required=True never returns None
        updated_at = _timestamp(document, "updated_at", org_id=org_id, required=False)
        archived_from = _timestamp(document, "archived_from", org_id=org_id, required=False)
        archive = document.get("archive")
        if archive is not None and (not isinstance(archive, str) or not archive):
            raise CheckpointError(
                f"checkpoint of org {org_id} has an invalid archive (must be a non-empty "
                "string); " + _fix_hint(org_id)
            )
        if closed_through % (minutes * NS_PER_MINUTE):
            raise CheckpointError(
                f"checkpoint of org {org_id}: closed_through is not a {minutes}-minute bucket "
                "boundary; " + _fix_hint(org_id)
            )
        return cls(
            closed_through_ns=closed_through,
            bucket_minutes=minutes,
            updated_at_ns=closed_through if updated_at is None else updated_at,
            schema_version=version,
            archive=archive,
            archived_from_ns=archived_from,
            open_buckets=_open_buckets(
                document.get("open_buckets"),
                closed_through_ns=closed_through,
                bucket_ns=minutes * NS_PER_MINUTE,
                org_id=org_id,
            ),
        )


def _open_buckets(
    value: object, *, closed_through_ns: int, bucket_ns: int, org_id: str
) -> tuple[OpenBucket, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_OPEN_BUCKETS:
        raise CheckpointError(
            f"checkpoint of org {org_id}: open_buckets must be a list of at most "
            f"{MAX_OPEN_BUCKETS} entries; " + _marks_hint(org_id)
        )
    buckets: dict[int, OpenBucket] = {}
    for entry in value:
        if not isinstance(entry, Mapping):
            raise CheckpointError(
                f"checkpoint of org {org_id}: an open_buckets entry is not an object; "
                + _marks_hint(org_id)
            )
        try:
            start = _timestamp(entry, "start", org_id=org_id, required=True)
            through = _timestamp(entry, "through", org_id=org_id, required=True)
        except CheckpointError:
            raise CheckpointError(
                f"checkpoint of org {org_id}: an open_buckets entry has no valid start and "
                "through timestamps; " + _marks_hint(org_id)
            ) from None
        assert start is not None
        assert through is not None
        events = entry.get("events")
        if (
            type(events) is not int
            or events < 0
            or start % bucket_ns
            or start < closed_through_ns
            or start in buckets
            or through % NS_PER_MS
            or not start < through <= start + bucket_ns
        ):
            raise CheckpointError(
                f"checkpoint of org {org_id}: the open_buckets entry for "
                f"{format_timestamp_ns(start)} is inconsistent (start on a bucket boundary at "
                "or after closed_through, through a whole millisecond inside the bucket, "
                "events a count); " + _marks_hint(org_id)
            )
        buckets[start] = OpenBucket(start, through, events)
    return tuple(buckets[start] for start in sorted(buckets))


def _timestamp(
    document: Mapping[str, Any], field: str, *, org_id: str, required: bool
) -> int | None:
    value = document.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise CheckpointError(
            f"checkpoint of org {org_id} has no {field} timestamp; " + _fix_hint(org_id)
        )
    try:
        return parse_timestamp_ns(value)
    except ValueError:
        raise CheckpointError(
            f"checkpoint of org {org_id}: {field} is not an RFC 3339 timestamp; "
            + _fix_hint(org_id)
        ) from None


def load_checkpoint(
    store: CheckpointStore,
    org_id: str,
    *,
    bucket_ns: int,
    now_ns: int | None = None,
    archive_id: str | None = None,
) -> Checkpoint | None:
    """The org's validated checkpoint, or ``None`` before its first run.

    A checkpoint written with another bucket width is a SettingsError: objects of both widths
    would overlap (keys hold both bucket ends), so the width can only change with a fresh
    archive prefix or after every bucket of the old width is sealed into days. A checkpoint
    recorded for another archive than ``archive_id`` is a CheckpointError (when both are known).
    """
    document = store.load(org_id)
    if document is None:
        return None
    checkpoint = Checkpoint.from_document(document, org_id=org_id)
    if (
        archive_id is not None
        and checkpoint.archive is not None
        and checkpoint.archive != archive_id
    ):
        raise CheckpointError(
            f"the checkpoint of org {org_id} belongs to the archive {checkpoint.archive}, not "
            f"to {archive_id}; to backfill the new archive, delete the checkpoint (or use a "
            "separate checkpoint location, e.g. DI_ARCHIVER_CHECKPOINT_PARAMETER_PREFIX); to "
            "keep archiving the old one, point DI_ARCHIVER_ARCHIVE_BUCKET / "
            "DI_ARCHIVER_ARCHIVE_DIR and DI_ARCHIVER_ARCHIVE_PREFIX back at it"
        )
    if checkpoint.bucket_ns != bucket_ns:
        raise SettingsError(
            f"org {org_id} was archived with {checkpoint.bucket_minutes}-minute buckets but the "
            f"settings say {bucket_ns // NS_PER_MINUTE}; set DI_ARCHIVER_BUCKET_MINUTES back to "
            f"{checkpoint.bucket_minutes}, or use a new DI_ARCHIVER_ARCHIVE_PREFIX (and delete "
            "the checkpoint) to start an archive with the new width"
        )
    if now_ns is not None and checkpoint.closed_through_ns > now_ns:
        raise CheckpointError(
            f"checkpoint of org {org_id} is in the future "
            f"({format_timestamp_ns(checkpoint.closed_through_ns)}); check the clock, or "
            + _fix_hint(org_id)
        )
    return checkpoint


def save_checkpoint(store: CheckpointStore, org_id: str, checkpoint: Checkpoint) -> None:
    """Store ``checkpoint``, refusing to move the stored one backwards (e.g. a racing run)."""
    current = store.load(org_id)
    if current is not None:
        stored = Checkpoint.from_document(current, org_id=org_id)
        if stored.closed_through_ns > checkpoint.closed_through_ns:
            raise CheckpointError(
                f"refusing to move the checkpoint of org {org_id} backwards from "
                f"{format_timestamp_ns(stored.closed_through_ns)} to "
                f"{format_timestamp_ns(checkpoint.closed_through_ns)}; is another run racing "
                "on the same org? Give each stream one concurrent run"
            )
        if checkpoint.archive is None and stored.archive is not None:
            # A caller that does not know the archive must not erase what a run recorded.
            checkpoint = replace(checkpoint, archive=stored.archive)
        if checkpoint.archived_from_ns is None and stored.archived_from_ns is not None:
            checkpoint = replace(checkpoint, archived_from_ns=stored.archived_from_ns)
    store.save(org_id, checkpoint.to_document())
