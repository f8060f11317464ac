"""Archive store and checkpoint store on a local directory, with the same key layout as S3.

Writes go to a temporary file that is fsynced and renamed into place, so a crash leaves either
the old object or the new one, never a torn file. Symbolic links inside the archive are never
followed (a link could make an altered copy pass for archive content): reads through one fail,
listings skip them, and :meth:`LocalArchiveStore.symlinks` reports each for ``verify``.
Metadata sits beside the object as ``<key>.meta.json`` (written first; a stale sidecar is
harmless because the object wins).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from di_archiver.domain.ports import StoredObject
from di_archiver.errors import CheckpointError, StoreError

META_SUFFIX = ".meta.json"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(path: Path, fileobj: IO[bytes], size: int) -> None:
    """Like :func:`_atomic_write` but streams from ``fileobj`` (never the whole body in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(fileobj, handle, 1024 * 1024)
            handle.flush()
            written = handle.tell()
            if written != size:
                raise StoreError(f"expected {size} bytes for {path.name}, read {written}")
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalArchiveStore:
    """An :class:`~di_archiver.domain.ports.ArchiveStore` rooted at a directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/") or key.endswith(META_SUFFIX):
            raise StoreError(f"refusing unsafe archive key {key!r}")
        path = self.root
        for part in key.split("/"):
            path = path / part
            if path.is_symlink():
                raise StoreError(
                    f"refusing archive key {key!r}: {path.relative_to(self.root).as_posix()} is "
                    "a symbolic link (replace it with the data it points to)"
                )
        return path

    def symlinks(self, prefix: str) -> Iterator[tuple[str, str]]:
        """Every symbolic link under ``prefix`` (never followed), as ``(key, description)``."""
        if not self.root.is_dir():
            return
        found = []
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            for name in [*dirs, *files]:
                path = Path(folder) / name
                if path.is_symlink():
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        kind = "directory" if path.is_dir() else "file"
                        found.append((key, f"a symbolic link ({kind})"))
        yield from sorted(found)

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        path = self._path(key)
        try:
            _atomic_write(
                path.with_name(path.name + META_SUFFIX), json.dumps(dict(metadata)).encode()
            )
            _atomic_write(path, body)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from exc

    def put_file(
        self, key: str, fileobj: IO[bytes], size: int, metadata: Mapping[str, str]
    ) -> None:
        """Stream ``size`` bytes from ``fileobj`` into ``key``, atomically like :meth:`put`."""
        path = self._path(key)
        try:
            _atomic_write(
                path.with_name(path.name + META_SUFFIX), json.dumps(dict(metadata)).encode()
            )
            _atomic_copy(path, fileobj, size)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from exc

    def get_stream(self, key: str) -> IO[bytes] | None:
        """An open binary file of the object, or ``None`` when absent (caller closes it)."""
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc.strerror}") from exc

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc.strerror}") from exc

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return StoredObject(key=key, size=size, metadata=self._metadata(path))

    def _metadata(self, path: Path) -> dict[str, str]:
        try:
            loaded = json.loads(path.with_name(path.name + META_SUFFIX).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def list(self, prefix: str) -> Iterator[StoredObject]:
        if not self.root.exists():
            return
        keys = []
        for path in self.root.rglob("*"):
            if (
                path.is_symlink()
                or not path.is_file()
                or path.name.endswith(META_SUFFIX)
                or path.name.startswith(".tmp-")
            ):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                keys.append(key)
        for key in sorted(keys):
            stored = self.head(key)
            if stored is not None:
                yield stored

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Sub-folders under ``prefix`` that hold objects, like S3 common prefixes."""
        folder, _, start = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return
        for entry in sorted(base.iterdir()):
            if (
                entry.is_dir()
                and entry.name.startswith(start)
                and any(
                    not p.name.endswith(META_SUFFIX)
                    and not p.name.startswith(".tmp-")
                    and p.is_file()
                    for p in entry.rglob("*")
                )
            ):
                yield f"{folder}/{entry.name}/" if folder else f"{entry.name}/"

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + META_SUFFIX).unlink(missing_ok=True)


class FileCheckpointStore:
    """A :class:`~di_archiver.domain.ports.CheckpointStore` in one JSON file (org id -> doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read_all(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise CheckpointError(
                f"checkpoint file {self.path} is not valid JSON; restore it or delete it to "
                "backfill again"
            ) from exc
        if not isinstance(loaded, dict):
            raise CheckpointError(f"checkpoint file {self.path} must hold a JSON object")
        return loaded

    def load(self, org_id: str) -> Mapping[str, Any] | None:
        document = self._read_all().get(org_id)
        if document is not None and not isinstance(document, dict):
            raise CheckpointError(f"checkpoint for org {org_id} in {self.path} is not an object")
        return document

    def save(self, org_id: str, document: Mapping[str, Any]) -> None:
        everything = self._read_all()
        everything[org_id] = dict(document)
        _atomic_write(self.path, json.dumps(everything, indent=2, sort_keys=True).encode())
