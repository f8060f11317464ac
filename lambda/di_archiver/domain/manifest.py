"""Day manifests: what a sealed (org, day) holds, hash-chained like CloudTrail digest files.

One manifest per (org, UTC day) at :func:`di_archiver.layout.manifest_key`, written for days
with no events too, so the chain has no holes. Each manifest records the SHA-256 of the
previous day's manifest *bytes*; the first day of an org's chain records :data:`GENESIS_SHA256`.

Repairs (a re-seal after late events) rewrite the day's manifest in place, appending a
``repairs`` entry, and then relink every later manifest in day order. The relink is announced
by a pending-relink marker written *before* the first rewrite and removed after the last, so an
interrupted relink is finished by the next run, while a break without a marker stays a finding
for ``verify`` (tampering is never "healed"). The marker is bound to the SHA-256 of the manifest
it relinks from (the one just written): a marker whose manifest no longer has that hash is
refused, so PutObject on a manifest plus a forged marker cannot get tampering relinked.

Serialisation is canonical (sorted keys, no spaces, UTF-8), so a manifest's hash is a pure
function of its content and ``verify`` can detect any re-encoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from di_archiver import __version__
from di_archiver.errors import IntegrityError
from di_archiver.layout import MANIFEST_ROOT, ORG_PARTITION, manifest_key

MANIFEST_SCHEMA_VERSION = 1
GENESIS_SHA256 = "0" * 64
PENDING_RELINK_NAME = "_pending-relink.json"


class ManifestError(IntegrityError):
    """A manifest is unreadable or not in the documented shape."""


@dataclass(frozen=True, slots=True)
class ManifestObject:
    """One sealed object of the day: its key and what it must contain."""

    key: str
    service: str
    count: int
    sha256: str
    first_ts: str | None
    last_ts: str | None
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "service": self.service,
            "count": self.count,
            "sha256": self.sha256,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Repair:
    """One re-seal of an already sealed day (history is append-only)."""

    at: str
    reason: str
    di_count_before: int | None
    di_count_after: int | None
    archived_count_before: int
    archived_count_after: int
    buckets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "reason": self.reason,
            "di_count_before": self.di_count_before,
            "di_count_after": self.di_count_after,
            "archived_count_before": self.archived_count_before,
            "archived_count_after": self.archived_count_after,
            "buckets": list(self.buckets),
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """The sealed state of one (org, day)."""

    org_id: str
    day: date
    objects: tuple[ManifestObject, ...]
    di_count: int | None
    previous_manifest_sha256: str
    sealed_at: str
    repairs: tuple[Repair, ...] = ()
    archiver_version: str = __version__
    schema_version: int = MANIFEST_SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def archived_count(self) -> int:
        return sum(obj.count for obj in self.objects)

    def to_json(self) -> dict[str, Any]:
        document = dict(self.extra)
        document.update(
            {
                "schema_version": self.schema_version,
                "org": self.org_id,
                "day": self.day.isoformat(),
                "objects": [obj.to_json() for obj in self.objects],
                "di_count": self.di_count,
                "archived_count": self.archived_count,
                "previous_manifest_sha256": self.previous_manifest_sha256,
                "sealed_at": self.sealed_at,
                "repairs": [repair.to_json() for repair in self.repairs],
                "archiver_version": self.archiver_version,
            }
        )
        return document

    def to_bytes(self) -> bytes:
        """Canonical bytes: the only serialisation ever written or hashed."""
        return canonical_json(self.to_json())

    def relinked(self, previous_sha256: str) -> Manifest:
        return replace(self, previous_manifest_sha256=previous_sha256)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str = "manifest") -> Manifest:
        """Parse and validate; any deviation from the schema is a :class:`ManifestError`."""
        try:
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict):
                raise TypeError("not a JSON object")
            if document.get("schema_version") != MANIFEST_SCHEMA_VERSION:
                raise ValueError(f"unknown schema_version {document.get('schema_version')!r}")
            objects = tuple(
                ManifestObject(
                    key=str(item["key"]),
                    service=str(item["service"]),
                    count=_int(item["count"]),
                    sha256=str(item["sha256"]),
                    first_ts=_opt_str(item.get("first_ts")),
                    last_ts=_opt_str(item.get("last_ts")),
                    size=_int(item["size"]),
                )
                for item in document["objects"]
            )
            repairs = tuple(
                Repair(
                    at=str(item["at"]),
                    reason=str(item["reason"]),
                    di_count_before=_opt_int(item.get("di_count_before")),
                    di_count_after=_opt_int(item.get("di_count_after")),
                    archived_count_before=_int(item["archived_count_before"]),
                    archived_count_after=_int(item["archived_count_after"]),
                    buckets=tuple(str(b) for b in item.get("buckets", ())),
                )
                for item in document.get("repairs", ())
            )
            known = {
                "schema_version",
                "org",
                "day",
                "objects",
                "di_count",
                "archived_count",
                "previous_manifest_sha256",
                "sealed_at",
                "repairs",
                "archiver_version",
            }
            manifest = cls(
                org_id=str(document["org"]),
                day=date.fromisoformat(str(document["day"])),
                objects=objects,
                di_count=_opt_int(document.get("di_count")),
                previous_manifest_sha256=str(document["previous_manifest_sha256"]),
                sealed_at=str(document["sealed_at"]),
                repairs=repairs,
                archiver_version=str(document["archiver_version"]),
                extra={k: v for k, v in document.items() if k not in known},
            )
            stated = _int(document["archived_count"])
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{key} is not a valid manifest: {exc!r}") from exc
        if stated != manifest.archived_count:
            raise ManifestError(
                f"{key}: archived_count {stated} differs from its objects' total "
                f"{manifest.archived_count}"
            )
        return manifest


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal content always gives equal bytes."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_dir(prefix: str, org_id: str) -> str:
    """The folder (with trailing slash) that holds one org's manifests."""
    key = manifest_key(prefix, org_id, date(2000, 1, 1))
    return key.rsplit("/", 1)[0] + "/"


def manifests_root(prefix: str) -> str:
    clean = prefix.strip("/")
    return f"{clean}/{MANIFEST_ROOT}/" if clean else f"{MANIFEST_ROOT}/"


def pending_relink_key(prefix: str, org_id: str) -> str:
    """Marker that authorises finishing an interrupted relink of the org's chain."""
    return manifest_dir(prefix, org_id) + PENDING_RELINK_NAME


def relink_marker(from_day: date, manifest_sha256: str, at: str) -> bytes:
    """The pending-relink marker body: which manifest to relink from, and its expected hash."""
    return canonical_json(
        {"from_day": from_day.isoformat(), "manifest_sha256": manifest_sha256, "at": at}
    )


def parse_relink_marker(data: bytes, key: str) -> tuple[date, str | None]:
    """``(from_day, expected manifest SHA-256)``; the hash is None in pre-binding markers."""
    try:
        document = json.loads(data)
        from_day = date.fromisoformat(str(document["from_day"]))
        expected = document.get("manifest_sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{key} is unreadable; inspect and delete it") from exc
    return from_day, expected if isinstance(expected, str) else None


def check_relink_marker(
    data: bytes, key: str, load_manifest: Callable[[date], bytes | None]
) -> str | None:
    """None when the marker names a manifest with exactly the hash it expects, else why not."""
    try:
        from_day, expected = parse_relink_marker(data, key)
    except ManifestError as exc:
        return str(exc)
    if expected is None:
        return f"marker does not bind the manifest of {from_day} to a hash"
    stored = load_manifest(from_day)
    if stored is None:
        return f"the manifest of {from_day} it names is missing"
    if sha256_hex(stored) != expected:
        return f"the manifest of {from_day} is not the one the marker was written for"
    return None


def parse_manifest_key(prefix: str, key: str) -> tuple[str, date] | None:
    """``(org_id, day)`` when ``key`` is a canonical manifest key under ``prefix``, else None."""
    root = manifests_root(prefix)
    if not key.startswith(root):
        return None
    parts = key[len(root) :].split("/")
    if len(parts) != 2 or not parts[0].startswith(f"{ORG_PARTITION}="):
        return None
    org_id = parts[0].split("=", 1)[1]
    name = parts[1]
    if not (name.startswith("dt=") and name.endswith(".json")):
        return None
    try:
        day = date.fromisoformat(name[3:-5])
    except ValueError:
        return None
    if manifest_key(prefix, org_id, day) != key:
        return None
    return org_id, day
