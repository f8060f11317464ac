"""Archive store and checkpoint store on a local directory, with the same key layout as S3.

Writes go to a temporary file that is fsynced and renamed into place, so a crash leaves either
the old object or the new one, never a torn file. Symbolic links inside the archive are never
followed (a link could make an altered copy pass for archive content): reads through one fail,
listings skip them, and :meth:`LocalArchiveStore.symlinks` reports each for ``verify``.
Metadata sits beside the object as ``<key>.meta.json``. Two files cannot be renamed at once, so
a crash or a full disk between the two renames would pair new metadata with old content (or the
reverse), and a run that trusted it would call a bucket "unchanged" and move its checkpoint past
events that were never stored. The sidecar therefore names the exact file it describes (inode,
size, modification time, all kept by ``rename``); :meth:`LocalArchiveStore.head` returns its
metadata only when it describes the object on disk, or when the object's content still hashes
to the recorded SHA-256 (an archive copied elsewhere), and otherwise no metadata, which makes
writers compare content.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from di_archiver.archive_format import META_SHA256
from di_archiver.domain.ports import StoredObject
from di_archiver.errors import CheckpointError, StoreError

META_SUFFIX = ".meta.json"
TEMP_PREFIX = ".tmp-"  # a write in progress; left behind only by a killed process
_WHAT_TO_DO = (
    "free space or fix permissions there, then run again (the checkpoint did not move past "
    "this object, so nothing is lost)"
)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once its directory entry is; not every platform can do this.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_file(path: Path, fill: Callable[[IO[bytes]], object]) -> Path:
    """A fsynced temporary file beside ``path`` holding what ``fill`` wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = _temp_file(path, lambda handle: handle.write(data))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _copier(fileobj: IO[bytes], size: int, name: str) -> Callable[[IO[bytes]], object]:
    def fill(handle: IO[bytes]) -> None:
        shutil.copyfileobj(fileobj, handle, 1024 * 1024)
        handle.flush()
        written = handle.tell()
        if written != size:
            raise StoreError(f"expected {size} bytes for {name}, read {written}")

    return fill


def _identity(stat: os.stat_result) -> dict[str, int]:
    return {"ino": stat.st_ino, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _content_sha256(path: Path) -> str | None:
    """SHA-256 of the object's uncompressed content (what ``di-sha256`` records), if gzip."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1024 * 1024), b""):
                digest.update(block)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


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
        self._write(key, lambda handle: handle.write(body), metadata)

    def put_file(
        self, key: str, fileobj: IO[bytes], size: int, metadata: Mapping[str, str]
    ) -> None:
        """Stream ``size`` bytes from ``fileobj`` into ``key``, atomically like :meth:`put`."""
        self._write(key, _copier(fileobj, size, key), metadata)

    def _write(
        self, key: str, fill: Callable[[IO[bytes]], object], metadata: Mapping[str, str]
    ) -> None:
        """Content and sidecar to fsynced temporary files, sidecar renamed first, object last.

        The sidecar records the temporary content file's identity, which the rename keeps:
        whichever rename a crash or a full disk interrupts, :meth:`head` sees that the pair
        disagrees and withholds the metadata.
        """
        path = self._path(key)
        meta_path = path.with_name(path.name + META_SUFFIX)
        content: Path | None = None
        sidecar: Path | None = None
        try:
            content = _temp_file(path, fill)
            document = {"metadata": dict(metadata), "object": _identity(content.stat())}
            encoded = json.dumps(document).encode()
            sidecar = _temp_file(meta_path, lambda handle: handle.write(encoded))
            os.replace(sidecar, meta_path)
            sidecar = None
            os.replace(content, path)
            content = None
            _fsync_dir(path.parent)
        except OSError as exc:
            raise StoreError(
                f"cannot write archive object {path}: {exc.strerror or exc}; {_WHAT_TO_DO}"
            ) from exc
        finally:
            for leftover in (content, sidecar):
                if leftover is not None:
                    leftover.unlink(missing_ok=True)

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
            stat = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return StoredObject(key=key, size=stat.st_size, metadata=self._metadata(path, stat))

    def _metadata(self, path: Path, stat: os.stat_result) -> dict[str, str]:
        """The sidecar's metadata if it describes this very object, else ``{}``."""
        try:
            loaded = json.loads(path.with_name(path.name + META_SUFFIX).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        except OSError as exc:
            raise StoreError(f"cannot read {path}{META_SUFFIX}: {exc.strerror or exc}") from exc
        if not isinstance(loaded, dict):
            return {}
        described = loaded.get("object")
        inner = loaded.get("metadata")
        if isinstance(described, dict) and isinstance(inner, dict):
            metadata = {str(k): str(v) for k, v in inner.items()}
            if described == _identity(stat):
                return metadata
        else:  # a sidecar from before objects were named in it
            metadata = {str(k): str(v) for k, v in loaded.items()}
        # Not provably this object's sidecar: trust it only if the content still matches it.
        recorded = metadata.get(META_SHA256)
        if recorded is not None and _content_sha256(path) == recorded:
            return metadata
        return {}

    def list(self, prefix: str) -> Iterator[StoredObject]:
        if not self.root.exists():
            return
        keys = []
        for path in self.root.rglob("*"):
            if (
                path.is_symlink()
                or not path.is_file()
                or path.name.endswith(META_SUFFIX)
                or path.name.startswith(TEMP_PREFIX)
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
                    and not p.name.startswith(TEMP_PREFIX)
                    and p.is_file()
                    for p in entry.rglob("*")
                )
            ):
                yield f"{folder}/{entry.name}/" if folder else f"{entry.name}/"

    def leftover_temp_files(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Temporary files of interrupted writes under ``prefix`` (never followed links)."""
        if not self.root.exists():
            return
        now = time.time()
        for path in sorted(self.root.rglob(f"{TEMP_PREFIX}*")):
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(self.root).as_posix()
            if relative.startswith(prefix):
                yield relative, max(0.0, now - path.stat().st_mtime)

    def remove_temp_file(self, path: str) -> None:
        target = self._path(path)
        if not target.name.startswith(TEMP_PREFIX):
            raise StoreError(f"{path} is not a temporary file of this store")
        target.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            path.with_name(path.name + META_SUFFIX).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {path}: {exc.strerror or exc}") from exc


class FileCheckpointStore:
    """A :class:`~di_archiver.domain.ports.CheckpointStore` in one JSON file (org id -> doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read_all(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CheckpointError(
                f"cannot read checkpoint file {self.path}: {exc.strerror or exc}; fix its "
                "permissions or point the checkpoint setting elsewhere"
            ) from exc
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
        try:
            _atomic_write(self.path, json.dumps(everything, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise CheckpointError(
                f"cannot write checkpoint file {self.path}: {exc.strerror or exc}; free space "
                "or fix permissions there, then run again (the archive is written; the next "
                "run redoes the buckets after the last saved checkpoint)"
            ) from exc
