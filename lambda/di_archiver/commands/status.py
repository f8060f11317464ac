"""``di-archiver status``: per org, the checkpoint, how far behind now it is, and the backlog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from di_archiver import application
from di_archiver.commands.common import EXIT_OK, emit, human_duration
from di_archiver.commands.run import add_destination_arguments, build_settings, destination_values
from di_archiver.errors import SettingsError
from di_archiver.timestamps import format_timestamp_ns
from di_archiver.wiring import build_runtime

NAME = "status"
HELP = (
    "Show each org's checkpoint, how far it trails now, and how many buckets are still to be "
    "archived or re-read (reads checkpoints only; no DI credential)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``status``'s arguments (the same destinations as ``run``)."""
    add_destination_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per org; exit 0."""
    settings = build_settings(destination_values(args))
    if settings.archive_dir is not None and not Path(settings.archive_dir).is_dir():
        raise SettingsError(
            f"--archive {args.archive}: no archive there (a directory that `run` or `demo` "
            "wrote); pass --archive DIR or s3://BUCKET/PREFIX"
        )
    runtime = build_runtime(settings, source=application.NoSource(), endpoint_url=args.endpoint_url)
    orgs: list[dict[str, Any]] = []
    lines: list[str] = []
    for status in application.status(settings, runtime):
        hours = status.open_buckets * status.bucket_minutes / 60
        doc = {
            "org_id": status.org_id,
            "archived": status.checkpoint_ns is not None,
            "checkpoint": None
            if status.checkpoint_ns is None
            else format_timestamp_ns(status.checkpoint_ns),
            "checkpoint_behind_now_seconds": status.lag_s,
            "buckets_after_checkpoint": status.open_buckets,
            "bucket_minutes": status.bucket_minutes,
        }
        orgs.append(doc)
        if status.checkpoint_ns is None:
            lines.append(
                f"org {status.org_id}: never archived; the first run backfills "
                f"{status.open_buckets} buckets ({human_duration(hours * 3600)} of events)"
            )
            continue
        lines.append(
            f"org {status.org_id}: checkpoint {doc['checkpoint']} "
            f"({human_duration(status.lag_s)} ago; buckets before it are closed and never "
            f"re-read); after it {status.open_buckets} buckets of {status.bucket_minutes} min "
            f"({human_duration(hours * 3600)}) are re-read by every run until they close "
            "(settle time) or, after a pause, are still to be archived"
        )
    emit(args, {"command": NAME, "orgs": orgs}, lines)
    return EXIT_OK
