"""``di-archiver status``: per org, the checkpoint, how far behind it is, and open buckets."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from di_archiver.commands.run import add_destination_arguments, destination_values
from di_archiver.errors import ArchiverError
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import format_timestamp_ns

NAME = "status"
HELP = "Show each org's checkpoint, freshness lag and open (still rewritten) buckets."


class _NoSource:
    """Status reads only the checkpoint store; it must never reach the DI API."""

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[dict[str, Any]]]:
        raise ArchiverError("status does not read the DI API")

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        raise ArchiverError("status does not read the DI API")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``status``'s arguments (the same destinations as ``run``)."""
    add_destination_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print one line per org; exit 0."""
    from di_archiver.wiring import build_runtime  # noqa: PLC0415

    settings = ArchiverSettings.build(destination_values(args))
    runtime = build_runtime(settings, source=_NoSource(), endpoint_url=args.endpoint_url)
    for status in runtime.engine.status(list(settings.org_ids)):
        if status.checkpoint_ns is None:
            print(f"org {status.org_id}: never archived (the first run backfills)")
            continue
        print(
            f"org {status.org_id}: checkpoint {format_timestamp_ns(status.checkpoint_ns)}, "
            f"lag {status.lag_s:.0f}s, {status.open_buckets} open buckets of "
            f"{status.bucket_minutes} min"
        )
    return 0
