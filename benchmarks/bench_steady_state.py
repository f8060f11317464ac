"""Steady state: what a run every 15 minutes reads from DI, with and without read-once marks.

    uv run python benchmarks/bench_steady_state.py --events-per-day 500000 --runs 8

One org is archived at T0 (a backfill of ``--hours``), then the clock moves 15 minutes at a time.
Each step runs the engine twice from the same archive and checkpoint: once as it is (the open
buckets' high-water marks in the checkpoint) and once with the marks removed, which is how every
run read before marks existed (each open bucket read whole). The simulator (in this process,
frozen clock, real HTTP on 127.0.0.1, no faults, no late indexing) counts what each run asked
for; "new" is what DI holds between the two runs' horizons, the least any run must read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.domain.planning import horizon_of
from di_archiver.simulator import OrgSpec, Simulator, SimulatorClock, SimulatorConfig
from di_archiver.timestamps import NS_PER_SECOND

ORG = "64a0c0ffee0000000000a001"
API_KEY = "bench-key-0123456789"
MINUTE = 60 * NS_PER_SECOND
HOUR = 60 * MINUTE


def _engine(
    client: DIClient, root: Path, clock: list[int], args: argparse.Namespace
) -> ArchiveEngine:
    config = EngineConfig(
        prefix="di",
        bucket_ns=args.bucket_minutes * MINUTE,
        lag_ns=args.lag_s * NS_PER_SECOND,
        settle_ns=args.settle_s * NS_PER_SECOND,
        lookback_ns=args.hours * HOUR,
        max_events_per_bucket=2_000_000,
        max_bucket_bytes=8 * 1024**3,
        time_budget_reserve_s=0.0,
        concurrency=args.concurrency,
    )
    return ArchiveEngine(
        source=client,
        store=LocalArchiveStore(root),
        checkpoints=FileCheckpointStore(root / "checkpoints.json"),
        config=config,
        clock=lambda: clock[0],
    )


def _strip_marks(root: Path) -> None:
    path = root / "checkpoints.json"
    documents = json.loads(path.read_text())
    for document in documents.values():
        document.pop("open_buckets", None)
    path.write_text(json.dumps(documents))


def _horizon(now_ns: int, lag_s: int) -> int:
    return horizon_of(now_ns, lag_s * NS_PER_SECOND)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=500_000)
    parser.add_argument("--hours", type=int, default=6, help="backfill before the first step")
    parser.add_argument("--runs", type=int, default=8, help="15-minute steps")
    parser.add_argument("--bucket-minutes", type=int, default=60)
    parser.add_argument("--lag-s", type=int, default=300)
    parser.add_argument("--settle-s", type=int, default=7200)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)

    span_s = args.hours * 3600.0
    future_s = args.runs * 900.0 + 3600.0
    events = int(args.events_per_day * (span_s + future_s) / 86_400)
    t0 = (time.time_ns() // HOUR) * HOUR + 7 * MINUTE + 123_456_789
    sim = Simulator(
        SimulatorConfig.quiet(
            seed=7,
            orgs=(OrgSpec(org_id=ORG, event_count=events),),
            span_seconds=span_s,
            future_span_seconds=future_s,
            api_keys={API_KEY: ORG},
        ),
        clock=SimulatorClock(now_ns=t0),
    )
    clock = [t0]
    rows: list[dict[str, float]] = []
    with sim.serve(host="127.0.0.1", port=0) as server, tempfile.TemporaryDirectory() as tmp:
        client = DIClient(base_url=server.base_url, credentials=ApiKeyCredentials(API_KEY))
        marked, unmarked = Path(tmp) / "marked", Path(tmp) / "unmarked"
        _engine(client, marked, clock, args).run([ORG])
        print(
            f"{args.events_per_day:,} events/day, {args.bucket_minutes}-minute buckets, lag "
            f"{args.lag_s} s, settle {args.settle_s} s; backfilled {args.hours} h at T0 "
            f"({sim.count_visible(ORG, None, _horizon(t0, args.lag_s)):,} events)"
        )
        print(
            f"{'step':>4} {'new':>8} | {'read-once: served':>17} {'events req':>10} "
            f"{'count req':>9} {'wall s':>7} | {'whole buckets: served':>21} {'events req':>10} "
            f"{'wall s':>7}"
        )
        for step in range(1, args.runs + 1):
            before = _horizon(clock[0], args.lag_s)
            clock[0] += 15 * MINUTE
            sim.clock.advance(900)
            new = sim.count_visible(ORG, before, _horizon(clock[0], args.lag_s))
            shutil.rmtree(unmarked, ignore_errors=True)
            shutil.copytree(marked, unmarked)
            _strip_marks(unmarked)
            figures: dict[str, float] = {"new": new}
            for name, root in (("whole", unmarked), ("once", marked)):
                sim.reset_stats()
                started = time.perf_counter()
                _engine(client, root, clock, args).run([ORG])
                stats = sim.stats
                figures |= {
                    f"{name}_wall": time.perf_counter() - started,
                    f"{name}_served": stats["events_served"],
                    f"{name}_events_req": stats["requests:events"],
                    f"{name}_count_req": stats["requests:events/count"],
                }
            rows.append(figures)
            print(
                f"{step:>4} {new:>8,} | {figures['once_served']:>17,} "
                f"{figures['once_events_req']:>10} {figures['once_count_req']:>9} "
                f"{figures['once_wall']:>7.2f} | {figures['whole_served']:>21,} "
                f"{figures['whole_events_req']:>10} {figures['whole_wall']:>7.2f}"
            )
        client.close()
    new_total = sum(r["new"] for r in rows)
    once = sum(r["once_served"] for r in rows)
    whole = sum(r["whole_served"] for r in rows)
    print(
        f"events read per new event: read-once {once / new_total:.3f}, whole open buckets "
        f"{whole / new_total:.2f} ({whole / once:.1f}x more); median wall per run "
        f"{statistics.median(r['once_wall'] for r in rows):.2f} s vs "
        f"{statistics.median(r['whole_wall'] for r in rows):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
