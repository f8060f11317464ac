"""The ports one run works with, as the composition root (``wiring``) builds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import msgspec
from msgspec import Struct

if TYPE_CHECKING:
    from di_archiver.domain.engine import ArchiveEngine
    from di_archiver.domain.ports import (
        ArchiveStore,
        CheckpointStore,
        EventSource,
        HeadPublisher,
        Signer,
    )
    from di_archiver.domain.reconcile import BucketSnapshotter


class Closeable(Protocol):
    def close(self) -> None: ...


class MaintenancePorts(Struct, frozen=True):
    """What sealing and reconcile need; without a source and snapshotter nothing asks DI."""

    store: ArchiveStore
    checkpoints: CheckpointStore
    source: EventSource | None = None
    snapshotter: BucketSnapshotter | None = None
    signer: Signer | None = None
    publishers: Sequence[HeadPublisher] = ()


class Runtime(Struct):
    """An engine, the stores and source it was built on, and what must be closed after the run."""

    engine: ArchiveEngine
    source: EventSource
    store: ArchiveStore
    checkpoints: CheckpointStore
    closeables: list[Closeable] = msgspec.field(default_factory=list)
    signer: Signer | None = None
    publishers: list[HeadPublisher] = msgspec.field(default_factory=list)
    reads_di: bool = True

    def close(self) -> None:
        """Close every owned resource (HTTP connections); safe to call twice."""
        while self.closeables:
            self.closeables.pop().close()

    @property
    def maintenance_ports(self) -> MaintenancePorts:
        if not self.reads_di:
            # The seal role never talks to DI: no counts in its manifests, no reconcile.
            return MaintenancePorts(
                self.store, self.checkpoints, signer=self.signer, publishers=self.publishers
            )
        return MaintenancePorts(
            self.store,
            self.checkpoints,
            self.source,
            self.engine,
            signer=self.signer,
            publishers=self.publishers,
        )

    def api_stats(self) -> tuple[int, int]:
        """``(retries, absorbed faults)`` the DI client saw; zeros for other sources.

        Absorbed faults were retried successfully: they are not ApiErrors (which alarm).
        """
        stats = getattr(self.source, "stats", None)
        if stats is None:
            return 0, 0
        errors = sum(
            int(getattr(stats, name, 0))
            for name in ("throttles", "server_errors", "transport_errors", "truncated")
        )
        return int(getattr(stats, "retries", 0)), errors
