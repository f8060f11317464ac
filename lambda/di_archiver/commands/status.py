"""``di-archiver status``: per org, the checkpoint, how far behind it is, and open buckets."""

from __future__ import annotations

import argparse

from di_archiver import application
from di_archiver.commands.run import add_destination_arguments, destination_values
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import format_timestamp_ns
from di_archiver.wiring import build_runtime

NAME = "status"
HELP = "Show each org's checkpoint, freshness lag and open (still rewritten) buckets."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``status``'s arguments (the same destinations as ``run``)."""
    add_destination_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print one line per org; exit 0."""
    settings = ArchiverSettings.build(destination_values(args))
    runtime = build_runtime(settings, source=application.NoSource(), endpoint_url=args.endpoint_url)
    for status in application.status(settings, runtime):
        if status.checkpoint_ns is None:
            print(f"org {status.org_id}: never archived (the first run backfills)")
            continue
        print(
            f"org {status.org_id}: checkpoint {format_timestamp_ns(status.checkpoint_ns)}, "
            f"lag {status.lag_s:.0f}s, {status.open_buckets} open buckets of "
            f"{status.bucket_minutes} min"
        )
    return 0
