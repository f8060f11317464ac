"""Use case ``status``: per org, the checkpoint, how far it trails now, and open buckets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from di_archiver.application.runtime import Runtime
from di_archiver.domain.engine import OrgStatus
from di_archiver.errors import ArchiverError
from di_archiver.settings import ArchiverSettings


class NoSource:
    """The event source for status: it reads only checkpoints and must never reach DI."""

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[Any]:
        raise ArchiverError("status does not read the DI API")

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        raise ArchiverError("status does not read the DI API")


def status(settings: ArchiverSettings, runtime: Runtime) -> list[OrgStatus]:
    """One :class:`OrgStatus` per configured org (build ``runtime`` with ``NoSource()``)."""
    return runtime.engine.status(list(settings.org_ids))
