"""Verify an archive: every object against its metadata, every manifest against its objects,
and every manifest against its predecessor (the hash chain).

Works on any :class:`~di_archiver.domain.ports.ArchiveStore` (local directory or S3). Finding
kinds, each naming the key it concerns:

``altered``      an object's content, count or size differs from its metadata or manifest
``missing``      a manifest lists an object that does not exist
``extra``        a sealed day holds an object its manifest does not list (incl. leftover buckets)
``unsealed``     a sealed object exists for a day that has no manifest
``unreadable``   an object is not valid gzip JSON Lines, or a line has no usable timestamp
``misplaced``    an event lies outside its object's time range, or lines are out of order
``manifest``     a manifest is invalid, or names another org/day than its key (reordered)
``chain``        a link does not match the previous manifest's hash, or a day is missing
``pending``      a relink was interrupted (run maintenance to finish it), or its marker does
                 not match the manifest it names (maintenance refuses to relink: inspect)
``unknown``      a key under the archive prefix that the layout does not produce (also keys
                 with the layout's shape but an impossible date, e.g. ``dt=2026-13-45``)
``signature``    (with a public key) a manifest has no certificate, or its certificate does
                 not sign exactly its bytes with that key; or a certificate has no manifest
``head``         (with expected heads) a published head's manifest is missing or different:
                 the newest sealed days were deleted or rewritten
``symlink``      a local archive holds a symbolic link (never followed: it could point at an
                 altered copy that ``query`` would read)
``empty``        nothing at all under the archive prefix: wrong path, bucket or prefix

The chain proves nothing was removed or altered *inside* it; the certificates prove the seal
role wrote each manifest (whoever rewrites a manifest and relinks the chain cannot sign).
Deleting the newest days entirely leaves a shorter valid, signed chain, so the seal role also
publishes every signed head outside the bucket, and ``expected_heads`` checks the archive
against one of them.

With a ``start_day`` the archive is not listed whole: per org, the services are listed with a
delimiter and then only each service's day folders inside the window, and only the window's
manifests (plus the one just before it, for the first link) are read. Keys outside the layout
are then reported only by an unwindowed run.

Objects are streamed (decompressed line by line), so memory is bounded by one line and zlib's
buffers whatever the size of a sealed day.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from di_archiver.archive_format import (
    META_COUNT,
    META_FIRST_TS,
    META_LAST_TS,
    META_SHA256,
    LineReader,
    event_timestamp_ns,
    sort_key,
)
from di_archiver.domain.certificate import (
    Certificate,
    check_certificate,
    parse_certificate_name,
)
from di_archiver.domain.manifest import (
    GENESIS_SHA256,
    PENDING_RELINK_NAME,
    Manifest,
    ManifestError,
    check_relink_marker,
    manifests_root,
    parse_manifest_key,
    pending_relink_key,
    sha256_hex,
)
from di_archiver.domain.ports import (
    ArchiveStore,
    LinkReportingStore,
    SignatureVerifier,
    StoredObject,
    TempFileStore,
    child_prefixes,
    open_object,
)
from di_archiver.errors import ArchiverError
from di_archiver.layout import (
    ORG_PARTITION,
    LayoutError,
    ObjectKey,
    certificate_key,
    late_root,
    manifest_key,
    org_prefix,
    parse_late_key,
    parse_object_key,
)
from di_archiver.timestamps import format_timestamp_ns


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.key}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    sha256: str
    count: int
    size: int


@dataclass(slots=True)
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    objects_checked: int = 0
    events_checked: int = 0
    manifests_checked: int = 0
    signatures_checked: int = 0
    signatures_required: bool = False
    chain_heads: dict[str, tuple[date, str]] = field(default_factory=dict)
    # Buckets staged for sealed days (invisible to queries; the next seal merges them).
    staged_objects: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, key: str, detail: str) -> None:
        self.findings.append(Finding(kind, key, detail))


@dataclass(frozen=True, slots=True)
class ExpectedHead:
    """A published head: the manifest of ``day`` must exist and hash to ``sha256``.

    ``org_id`` may be None when the archive holds one org only.
    """

    org_id: str | None
    day: date
    sha256: str


def _in_range(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or day >= start) and (end is None or day <= end)


def check_object(
    store: ArchiveStore, stored: StoredObject, parsed: ObjectKey
) -> tuple[ObjectFacts | None, list[Finding], int]:
    """Recompute one object's hash, count and order; compare them with its metadata."""
    findings: list[Finding] = []
    try:
        stream = open_object(store, stored.key)
    except ArchiverError as exc:
        return None, [Finding("unreadable", stored.key, str(exc))], 0
    if stream is None:
        return None, [Finding("missing", stored.key, "listed but cannot be read")], 0
    reader = LineReader(stream)
    count = 0
    previous: tuple[int, str, bytes] | None = None
    first = last = None
    try:
        with stream:
            for line in reader:
                count += 1
                try:
                    event = json.loads(line)
                    ts = event_timestamp_ns(event)
                except (ValueError, ArchiverError) as exc:
                    findings.append(Finding("unreadable", stored.key, f"line {count}: {exc}"))
                    continue
                key = sort_key(ts, event, line)
                if previous is not None and key < previous:
                    findings.append(
                        Finding("misplaced", stored.key, f"line {count} is out of order")
                    )
                if not parsed.start_ns <= ts < parsed.end_ns:
                    findings.append(
                        Finding(
                            "misplaced", stored.key, f"line {count} lies outside the object's range"
                        )
                    )
                previous = key
                first = ts if first is None else first
                last = ts
    except ArchiverError as exc:
        return None, [Finding("unreadable", stored.key, str(exc))], 0
    if reader.partial_tail:
        findings.append(Finding("unreadable", stored.key, "content does not end with a newline"))
    facts = ObjectFacts(reader.sha256, count, reader.compressed_size)
    facts = ObjectFacts(facts.sha256, count, facts.size)
    meta = stored.metadata
    if not meta:
        # S3 listings carry no user metadata; only HEAD returns it.
        try:
            described = store.head(stored.key)
        except ArchiverError as exc:
            return None, [*findings, Finding("unreadable", stored.key, str(exc))], count
        meta = described.metadata if described is not None else {}
    if meta.get(META_SHA256) != facts.sha256:
        findings.append(Finding("altered", stored.key, "SHA-256 differs from metadata"))
    if meta.get(META_COUNT) != str(count):
        findings.append(
            Finding(
                "altered", stored.key, f"holds {count} events, metadata says {meta.get(META_COUNT)}"
            )
        )
    if (
        first is not None
        and last is not None
        and (
            meta.get(META_FIRST_TS) != format_timestamp_ns(first)
            or meta.get(META_LAST_TS) != format_timestamp_ns(last)
        )
    ):
        findings.append(Finding("altered", stored.key, "first/last timestamp differ from metadata"))
    return facts, findings, count


def verify_archive(
    store: ArchiveStore,
    *,
    prefix: str,
    org_ids: Iterable[str] | None = None,
    start_day: date | None = None,
    end_day: date | None = None,
    chain_may_start_after: date | None = None,
    today: date | None = None,
    verifier: SignatureVerifier | None = None,
    expected_heads: Sequence[ExpectedHead] = (),
    on_object: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Check objects, manifests and chains of the selected orgs and days; never writes.

    ``chain_may_start_after``: manifests of days up to this date may have been expired by the
    bucket's lifecycle rule, so a manifest whose missing predecessor lies on or before it is
    accepted as the start of the surviving chain (its link cannot be checked). Default: strict,
    every missing predecessor is a ``chain`` finding. ``today`` ends an open window (default:
    the current UTC date). With a ``verifier`` every manifest in range must carry a valid
    certificate; ``expected_heads`` are published heads the archive must still contain.
    ``on_object`` is told each listed object's key as it is checked (progress).
    """
    prefix = prefix.strip("/")
    wanted = set(org_ids) if org_ids is not None else None
    report = VerifyReport(signatures_required=verifier is not None)
    root = f"{prefix}/" if prefix else ""
    if isinstance(store, LinkReportingStore):
        for key, detail in store.symlinks(root):
            report.add(
                "symlink", key, f"{detail}; links are never followed: replace it with the data"
            )
    if isinstance(store, TempFileStore):
        for path, age_s in store.leftover_temp_files(root):
            report.add(
                "temp",
                path,
                f"temporary file of an interrupted write, {age_s:.0f} s old; it is not archive "
                "data: maintenance (`di-archiver seal`) removes it once it is an hour old, or "
                "delete it",
            )

    facts: dict[str, ObjectFacts] = {}
    sealed_by_day: dict[tuple[str, date], set[str]] = {}
    buckets_by_day: dict[tuple[str, date], set[str]] = {}
    manifest_keys: dict[str, dict[date, str]] = {}
    certificate_keys: dict[str, dict[date, str]] = {}
    if start_day is not None:
        last_day = end_day or (today or datetime.now(UTC).date()) + timedelta(days=1)
        listing = _window_listing(
            store,
            prefix=prefix,
            wanted=wanted,
            start_day=start_day,
            end_day=last_day,
            manifest_keys=manifest_keys,
            report=report,
        )
    else:
        listing = _full_listing(
            store,
            prefix,
            wanted=wanted,
            report=report,
            manifest_keys=manifest_keys,
            certificate_keys=certificate_keys,
        )
    seen_any = False
    for stored, parsed in listing:
        seen_any = True
        if (wanted is not None and parsed.org_id not in wanted) or not _in_range(
            parsed.day, start_day, end_day
        ):
            continue
        if on_object is not None:
            on_object(stored.key)
        object_facts, findings, count = check_object(store, stored, parsed)
        report.findings.extend(findings)
        report.objects_checked += 1
        report.events_checked += count
        if object_facts is not None:
            facts[stored.key] = object_facts
        if parsed.late:
            report.staged_objects += 1
            continue
        group = sealed_by_day if parsed.sealed else buckets_by_day
        group.setdefault((parsed.org_id, parsed.day), set()).add(stored.key)
    for org in sorted(manifest_keys if wanted is None else wanted):
        _check_pending_marker(store, prefix, org, report)

    manifested: dict[tuple[str, date], set[str]] = {}
    for org, days in sorted(manifest_keys.items()):
        listed = _verify_chain(
            store,
            org=org,
            days=days,
            start_day=start_day,
            end_day=end_day,
            facts=facts,
            report=report,
            chain_may_start_after=chain_may_start_after,
            prefix=prefix,
            verifier=verifier,
        )
        manifested.update(((org, day), keys) for day, keys in listed.items())
    if verifier is not None:
        for org, certified in sorted(certificate_keys.items()):
            for day, key in sorted(certified.items()):
                if day not in manifest_keys.get(org, {}) and _in_range(day, start_day, end_day):
                    report.add("signature", key, "certificate without a manifest (deleted day?)")
    _check_expected_heads(
        store,
        prefix,
        expected_heads=expected_heads,
        manifest_keys=manifest_keys,
        wanted=wanted,
        report=report,
    )
    if not seen_any and not manifest_keys and not report.findings and not _any_key(store, root):
        report.add(
            "empty",
            root or "/",
            "no archive objects or manifests here: check --archive (the directory or "
            "s3://bucket/prefix the archiver writes) and the prefix",
        )

    for (org, day), keys in sorted(sealed_by_day.items()):
        for key in sorted(keys - manifested.get((org, day), set())):
            if (org, day) in manifested:
                report.add("extra", key, "sealed object not listed in the day manifest")
            else:
                report.add("unsealed", key, "sealed object without a day manifest")
    for (org, day), keys in sorted(buckets_by_day.items()):
        if (org, day) in manifested:
            for key in sorted(keys):
                report.add("extra", key, "bucket object in a sealed day (run maintenance)")
    return report


def _any_key(store: ArchiveStore, root: str) -> bool:
    return next(iter(store.list(root)), None) is not None


def _check_expected_heads(
    store: ArchiveStore,
    prefix: str,
    *,
    expected_heads: Sequence[ExpectedHead],
    manifest_keys: dict[str, dict[date, str]],
    wanted: set[str] | None,
    report: VerifyReport,
) -> None:
    """Each published head's manifest must still exist with exactly the published hash."""
    for expected in expected_heads:
        org = expected.org_id
        if org is None:
            orgs = sorted(manifest_keys) if wanted is None else sorted(wanted)
            if len(orgs) != 1:
                report.add(
                    "head",
                    f"{expected.day}:{expected.sha256}",
                    f"the archive holds {len(orgs)} orgs; give the head as ORG:DAY:SHA256",
                )
                continue
            org = orgs[0]
        key = manifest_key(prefix, org, expected.day)
        data = store.get(key)
        if data is None:
            newest = max(manifest_keys.get(org, {}), default=None)
            report.add(
                "head",
                key,
                f"the published head {expected.day} is missing (newest manifest here: "
                f"{newest or 'none'}): sealed days were deleted",
            )
        elif sha256_hex(data) != expected.sha256.lower():
            report.add(
                "head",
                key,
                "differs from the published head: rewritten after it was published (or a later "
                "repair re-published it: compare with the newest published head)",
            )


def _full_listing(
    store: ArchiveStore,
    prefix: str,
    *,
    wanted: set[str] | None,
    report: VerifyReport,
    manifest_keys: dict[str, dict[date, str]],
    certificate_keys: dict[str, dict[date, str]],
) -> Iterator[tuple[StoredObject, ObjectKey]]:
    """Every object of the archive (one listing); collects manifest keys on the way."""
    root = f"{prefix}/" if prefix else ""
    m_root = manifests_root(prefix)
    staged_root = late_root(prefix)
    for stored in store.list(root):
        if stored.key.startswith(staged_root):
            try:
                staged = parse_late_key(stored.key)
            except LayoutError:
                report.add("unknown", stored.key, "not a staged archive object key")
                continue
            if wanted is None or staged.org_id in wanted:
                yield stored, staged
            continue
        if stored.key.startswith(m_root):
            parsed_manifest = parse_manifest_key(prefix, stored.key)
            if parsed_manifest is None:
                org_part = stored.key[len(m_root) :].split("/")[0]
                org = org_part.split("=", 1)[-1]
                if wanted is not None and org not in wanted:
                    continue
                certified_day = parse_certificate_name(stored.key.rsplit("/", 1)[-1])
                if stored.key.endswith(PENDING_RELINK_NAME):
                    manifest_keys.setdefault(org, {})
                elif certified_day is not None and stored.key == certificate_key(
                    prefix, org, certified_day
                ):
                    certificate_keys.setdefault(org, {})[certified_day] = stored.key
                else:
                    report.add("unknown", stored.key, "not a manifest; inspect")
                continue
            org, day = parsed_manifest
            if wanted is None or org in wanted:
                manifest_keys.setdefault(org, {})[day] = stored.key
            continue
        try:
            parsed = parse_object_key(stored.key)
        except LayoutError:
            report.add("unknown", stored.key, "not an archive object key")
            continue
        yield stored, parsed


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _window_listing(
    store: ArchiveStore,
    *,
    prefix: str,
    wanted: set[str] | None,
    start_day: date,
    end_day: date,
    manifest_keys: dict[str, dict[date, str]],
    report: VerifyReport,
) -> Iterator[tuple[StoredObject, ObjectKey]]:
    """Objects of the window only: org -> services (delimited) -> each day folder in range.

    Collects the window's manifest keys plus the one before it (for the first link).
    """
    orgs = set(wanted) if wanted is not None else _listed_orgs(store, prefix)
    for org in sorted(orgs):
        found = manifest_keys.setdefault(org, {})
        for day in _days(start_day - timedelta(days=1), end_day):
            key = manifest_key(prefix, org, day)
            if store.head(key) is not None:
                found[day] = key
        for service_prefix in child_prefixes(store, org_prefix(prefix, org)):
            for day in _days(start_day, end_day):
                for stored in store.list(f"{service_prefix}dt={day.isoformat()}/"):
                    try:
                        parsed = parse_object_key(stored.key)
                    except LayoutError:
                        report.add("unknown", stored.key, "not an archive object key")
                        continue
                    if parsed.org_id == org:
                        yield stored, parsed


def _listed_orgs(store: ArchiveStore, prefix: str) -> set[str]:
    root = f"{prefix}/" if prefix else ""
    orgs = set()
    for folder in [
        *child_prefixes(store, root),
        *child_prefixes(store, manifests_root(prefix)),
    ]:
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(f"{ORG_PARTITION}="):
            orgs.add(name.split("=", 1)[1])
    return orgs


def _check_pending_marker(store: ArchiveStore, prefix: str, org: str, report: VerifyReport) -> None:
    """Report an org's pending-relink marker, and whether it matches the manifest it names."""
    key = pending_relink_key(prefix, org)
    data = store.get(key)
    if data is None:
        return
    problem = check_relink_marker(data, key, lambda day: store.get(manifest_key(prefix, org, day)))
    if problem is None:
        report.add("pending", key, "a relink was interrupted; run maintenance to finish it")
    else:
        report.add("pending", key, f"{problem}; maintenance refuses to relink, inspect")


def _verify_chain(
    store: ArchiveStore,
    *,
    org: str,
    days: dict[date, str],
    start_day: date | None,
    end_day: date | None,
    facts: dict[str, ObjectFacts],
    report: VerifyReport,
    chain_may_start_after: date | None = None,
    prefix: str = "",
    verifier: SignatureVerifier | None = None,
) -> dict[date, set[str]]:
    """Walk one org's chain in day order; returns the object keys each manifest lists."""
    listed: dict[date, set[str]] = {}
    ordered = sorted(days)
    previous_bytes: bytes | None = None
    previous_day: date | None = None
    for index, day in enumerate(ordered):
        if not _in_range(day, start_day, end_day):
            # Only the manifest right before the range is needed, to check the first link.
            if index + 1 < len(ordered) and _in_range(ordered[index + 1], start_day, end_day):
                previous_bytes = store.get(days[day])
                previous_day = day
            continue
        key = days[day]
        data = store.get(key)
        if data is None:
            report.add("missing", key, "manifest listed but cannot be read")
            previous_bytes, previous_day = None, day
            continue
        report.manifests_checked += 1
        if verifier is not None:
            # On the bytes, so a manifest that does not even parse is still checked.
            _check_signature(
                store,
                prefix,
                org=org,
                day=day,
                manifest_bytes=data,
                verifier=verifier,
                report=report,
            )
        try:
            manifest = Manifest.from_bytes(data, key=key)
        except ManifestError as exc:
            report.add("manifest", key, str(exc))
            previous_bytes, previous_day = data, day
            continue
        if manifest.to_bytes() != data:
            report.add("manifest", key, "not in canonical form (edited by hand?)")
        if manifest.org_id != org or manifest.day != day:
            report.add(
                "manifest", key, f"describes org {manifest.org_id} day {manifest.day} (reordered?)"
            )
        expected_prev = _expected_previous(index, ordered, day, previous_day, previous_bytes)
        before = day - timedelta(days=1)
        expired = (
            chain_may_start_after is not None
            and before <= chain_may_start_after
            and (previous_day != before or previous_bytes is None)
        )
        if expired:
            pass  # the predecessor aged out under lifecycle; this is where the chain survives
        elif expected_prev is None:
            report.add("chain", key, f"manifest of {day - timedelta(days=1)} is missing")
        elif manifest.previous_manifest_sha256 != expected_prev:
            report.add("chain", key, "previous_manifest_sha256 does not match the previous day")
        listed[day] = _check_manifest_objects(store, manifest, key, facts, report)
        previous_bytes, previous_day = data, day
        report.chain_heads[org] = (day, sha256_hex(data))
    return listed


def _check_signature(
    store: ArchiveStore,
    prefix: str,
    *,
    org: str,
    day: date,
    manifest_bytes: bytes,
    verifier: SignatureVerifier,
    report: VerifyReport,
) -> None:
    key = certificate_key(prefix, org, day)
    report.signatures_checked += 1
    data = store.get(key)
    if data is None:
        report.add("signature", key, "missing: the manifest of this day is not signed")
        return
    try:
        certificate = Certificate.from_bytes(data, key=key)
    except ManifestError as exc:
        report.add("signature", key, str(exc))
        return
    problem = check_certificate(
        certificate,
        verifier=verifier,
        prefix=prefix,
        org_id=org,
        day=day,
        manifest_bytes=manifest_bytes,
    )
    if problem is not None:
        report.add("signature", key, problem)


def _expected_previous(
    index: int,
    ordered: list[date],
    day: date,
    previous_day: date | None,
    previous_bytes: bytes | None,
) -> str | None:
    if index == 0:
        return GENESIS_SHA256
    if previous_day != day - timedelta(days=1) or ordered[index - 1] != previous_day:
        return None
    if previous_bytes is None:
        return None
    return sha256_hex(previous_bytes)


def _check_manifest_objects(
    store: ArchiveStore,
    manifest: Manifest,
    key: str,
    facts: dict[str, ObjectFacts],
    report: VerifyReport,
) -> set[str]:
    listed = set()
    for entry in manifest.objects:
        listed.add(entry.key)
        try:
            parsed = parse_object_key(entry.key)
        except LayoutError:
            report.add("manifest", key, f"lists a non-archive key {entry.key!r}")
            continue
        if not parsed.sealed or parsed.day != manifest.day or parsed.org_id != manifest.org_id:
            report.add("manifest", key, f"lists {entry.key} which is not this day's sealed object")
        actual = facts.get(entry.key)
        if actual is None:
            # Not in the listing (e.g. reachable only through a symlink, or outside a window):
            # whatever head() says, its content is checked before it counts as present.
            try:
                described = store.head(entry.key)
            except ArchiverError as exc:
                report.add("unreadable", entry.key, str(exc))
                continue
            if described is None:
                report.add("missing", entry.key, f"listed in {key} but absent")
                continue
            checked, findings, _ = check_object(store, described, parsed)
            report.findings.extend(findings)
            if checked is None:
                continue
            facts[entry.key] = actual = checked
        if actual.sha256 != entry.sha256:
            report.add("altered", entry.key, "SHA-256 differs from the manifest")
        if actual.count != entry.count:
            report.add(
                "altered", entry.key, f"holds {actual.count} events, manifest says {entry.count}"
            )
        if actual.size != entry.size:
            report.add("altered", entry.key, f"size {actual.size} differs from manifest")
    return listed
