"""Storage shape of hourly bucket objects vs sealed day objects, projected to a year.

Generates a week of simulated DI events for one org (default 100k events/day), encodes them
the way the engine (hourly, per service, gzip level 6) and sealing (daily, per service, level 9)
do, and prints object counts and sizes per year. Objects under 128 KB matter because S3
lifecycle transitions skip them and Glacier classes bill them as 128 KB.

    uv run python benchmarks/bench_storage.py [--events-per-day 100000] [--days 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from typing import Any

from di_archiver.archive_format import (
    ARCHIVAL_LEVEL,
    FAST_LEVEL,
    encode_lines,
    event_timestamp_ns,
    sort_key,
)
from di_archiver.layout import service_partition
from di_archiver.raw_events import serialise_event
from di_archiver.simulator import Simulator, SimulatorClock, SimulatorConfig
from di_archiver.simulator.config import DEMO_ORG_ID, OrgSpec
from di_archiver.timestamps import NS_PER_SECOND

HOUR = 3600 * NS_PER_SECOND
DAY = 24 * HOUR
SMALL = 128 * 1024
WEEKS_PER_YEAR = 365 / 7


def describe(name: str, sizes: list[int], days: int, events: int) -> dict[str, Any]:
    per_year = len(sizes) * 365 / days
    total_year = sum(sizes) * 365 / days
    small = sum(1 for s in sizes if s < SMALL)
    row = {
        "layout": name,
        "objects_per_year": round(per_year),
        "bytes_per_year_gb": round(total_year / 1e9, 2),
        "median_object_kb": round(statistics.median(sizes) / 1024, 1),
        "mean_object_kb": round(statistics.fmean(sizes) / 1024, 1),
        "share_under_128kb": round(small / len(sizes), 3),
        "bytes_per_event": round(sum(sizes) / events, 1),
    }
    print(
        f"{name:>14}: {row['objects_per_year']:>9,} objects/year, "
        f"{row['bytes_per_year_gb']:>7} GB/year, median {row['median_object_kb']} KB, "
        f"mean {row['mean_object_kb']} KB, {row['share_under_128kb']:.1%} under 128 KB, "
        f"{row['bytes_per_event']} B/event"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    now = 1_778_371_200 * NS_PER_SECOND  # 2026-05-10T00:00Z, a midnight
    started = time.perf_counter()
    sim = Simulator(
        SimulatorConfig.quiet(
            orgs=(OrgSpec(org_id=DEMO_ORG_ID, event_count=args.events_per_day * args.days),),
            span_seconds=args.days * 86_400.0,
        ),
        clock=SimulatorClock(now_ns=now),
    )
    hourly: dict[tuple[str, int], list[tuple[tuple[int, str, bytes], bytes]]] = defaultdict(list)
    daily: dict[tuple[str, int], list[tuple[tuple[int, str, bytes], bytes]]] = defaultdict(list)
    events = 0
    for event in sim.visible_events(DEMO_ORG_ID, now - args.days * DAY, now):
        line = serialise_event(event)
        ts = event_timestamp_ns(event)
        pair = (sort_key(ts, event, line), line)
        service = service_partition(event.get("service"))
        hourly[(service, ts // HOUR)].append(pair)
        daily[(service, ts // DAY)].append(pair)
        events += 1
    print(
        f"{events:,} events over {args.days} days ({time.perf_counter() - started:.1f} s to build)"
    )
    hourly_sizes = [len(encode_lines(p, level=FAST_LEVEL).body) for p in hourly.values()]
    sealed = [encode_lines(p, level=ARCHIVAL_LEVEL) for p in daily.values()]
    sealed_sizes = [len(e.body) for e in sealed]
    raw = sum(e.raw_size for e in sealed)
    print(f"raw JSONL: {raw / events:.0f} B/event; projected per year for this org:")
    describe("hourly objects", hourly_sizes, args.days, events)
    describe("sealed days", sealed_sizes, args.days, events)
    print(
        f"sealing divides the object count by {len(hourly_sizes) / len(sealed_sizes):.1f} and "
        f"the stored bytes by {sum(hourly_sizes) / sum(sealed_sizes):.2f}"
    )


if __name__ == "__main__":
    main()
