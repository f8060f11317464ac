"""The small protocols the domain talks to; adapters implement them."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, Protocol, runtime_checkable

import msgspec
from msgspec import Struct

from di_archiver.raw_events import RawEvent


class StoredObject(Struct, frozen=True):
    """An archive object's key and user metadata (all values strings, as S3 keeps them)."""

    key: str
    size: int
    metadata: Mapping[str, str] = msgspec.field(default_factory=dict)


class ArchiveStore(Protocol):
    """Where archive objects live: S3, or a local directory with the same key layout."""

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        """Write ``body`` durably under ``key``; return only once it is readable."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when absent."""

    def head(self, key: str) -> StoredObject | None:
        """The object's metadata, or ``None`` when absent."""

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix`` in key order (metadata may be empty)."""

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""


@runtime_checkable
class StreamingArchiveStore(Protocol):
    """Optional extension of :class:`ArchiveStore`: objects too big to hold as ``bytes``.

    Sealed days can be hundreds of MB; streaming them keeps a small Lambda's memory bounded by
    its buffers instead of the object.
    """

    def get_stream(self, key: str) -> IO[bytes] | None:
        """A readable stream of the object's bytes (caller closes it), or ``None`` if absent."""

    def put_file(
        self, key: str, fileobj: IO[bytes], size: int, metadata: Mapping[str, str]
    ) -> None:
        """Write ``size`` bytes read from ``fileobj`` (positioned at 0) like :meth:`put`."""


@runtime_checkable
class PrefixListingStore(Protocol):
    """Optional extension of :class:`ArchiveStore`: list one level of the key tree."""

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Distinct ``prefix + part + "/"`` for keys under ``prefix`` (S3 common prefixes)."""


@runtime_checkable
class ObjectLockProbe(Protocol):
    """Optional extension of :class:`ArchiveStore`: a bucket that can say whether it locks."""

    bucket: str

    def object_lock_enabled(self) -> bool:
        """Whether S3 Object Lock is enabled on the bucket (a StoreError if unreadable)."""


@runtime_checkable
class TempFileStore(Protocol):
    """Optional extension of :class:`ArchiveStore`: a store whose writes use temporary files.

    A process killed mid-write (SIGKILL, power loss) leaves its temporary file behind; it is
    never archive data, but it should not sit there unnoticed.
    """

    def leftover_temp_files(self, prefix: str) -> Iterator[tuple[str, float]]:
        """``(path relative to the store root, age in seconds)`` of each temporary file."""

    def remove_temp_file(self, path: str) -> None:
        """Delete one temporary file named by :meth:`leftover_temp_files`."""


def child_prefixes(store: ArchiveStore, prefix: str) -> list[str]:
    """One level of the key tree under ``prefix``, sorted; falls back to a full listing."""
    if isinstance(store, PrefixListingStore):
        return sorted(set(store.list_prefixes(prefix)))
    found = set()
    for stored in store.list(prefix):
        rest = stored.key[len(prefix) :]
        if "/" in rest:
            found.add(prefix + rest.split("/", 1)[0] + "/")
    return sorted(found)


def open_object(store: ArchiveStore, key: str) -> IO[bytes] | None:
    """Stream ``key`` from a streaming store, or wrap ``get`` for a plain one."""
    if isinstance(store, StreamingArchiveStore):
        return store.get_stream(key)
    body = store.get(key)
    return None if body is None else io.BytesIO(body)


def put_fileobj(
    store: ArchiveStore, key: str, fileobj: IO[bytes], size: int, metadata: Mapping[str, str]
) -> None:
    """Upload from a file through ``put_file`` when the store streams, else via ``put``."""
    fileobj.seek(0)
    if isinstance(store, StreamingArchiveStore):
        store.put_file(key, fileobj, size, metadata)
    else:
        store.put(key, fileobj.read(), metadata)


@runtime_checkable
class LinkReportingStore(Protocol):
    """Optional extension of :class:`ArchiveStore`: a local store reports symbolic links.

    A link inside a local archive would let an altered copy pass for archive content; the store
    never follows one, and ``verify`` reports each.
    """

    def symlinks(self, prefix: str) -> Iterator[tuple[str, str]]:
        """``(key, what it is)`` for every symbolic link under ``prefix``."""


class CheckpointStore(Protocol):
    """One checkpoint document per organisation (SSM Parameter Store or a local file)."""

    def load(self, org_id: str) -> Mapping[str, Any] | None:
        """The stored document, or ``None`` when the org has never been archived."""

    def save(self, org_id: str, document: Mapping[str, Any]) -> None:
        """Overwrite the org's document durably."""


class EventSource(Protocol):
    """Reads DI events; the HTTP client implements it, tests may fake it."""

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[Sequence[RawEvent]]:
        """Pages of events (placement fields + the exact bytes DI sent) with ``start <= ts``
        and ``ts`` up to ``end``; an event without a usable timestamp raises
        :class:`~di_archiver.raw_events.MalformedEventError`."""

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        """DI's ``/events/count`` for the same window."""


class Signer(Protocol):
    """Signs SHA-256 digests with an asymmetric key the archive writer cannot use.

    Served by KMS (``Sign`` with ``MessageType=DIGEST``) in AWS and by a key file locally.
    """

    @property
    def key_id(self) -> str:
        """Names the key (a KMS key ARN, or a key file's public-key fingerprint)."""

    @property
    def algorithm(self) -> str:
        """The signing algorithm, e.g. ``ECDSA_SHA_256``."""

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the public key's DER SubjectPublicKeyInfo."""

    def sign_digest(self, digest: bytes) -> bytes:
        """A signature (ECDSA: DER-encoded) over the 32-byte SHA-256 ``digest``."""


class SignatureVerifier(Protocol):
    """Checks signatures with a public key only (fetched from KMS, or given as a PEM file)."""

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the DER SubjectPublicKeyInfo: which public key this is."""

    def verify_digest(self, digest: bytes, signature: bytes, algorithm: str) -> bool:
        """True only when ``signature`` is valid for ``digest`` under this key."""


class HeadPublisher(Protocol):
    """Publishes each signed day outside the archive bucket (EventBridge, a log, a file)."""

    def publish(self, head: Mapping[str, Any]) -> None:
        """Record one signed manifest: org, day, manifest SHA-256, signature, key."""
