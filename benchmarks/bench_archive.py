"""Archive N simulated events and compare against the bare I/O floor.

    uv run python benchmarks/bench_archive.py --events 100000
    uv run python benchmarks/bench_archive.py              # N = 1,000,000

Three processes, so each one's memory is its own: the simulator (serving on 127.0.0.1 with a
fixed per-page latency via its ``slow`` fault at 100%, and every event pre-rendered by a warm-up
pass so the server costs latency, not this machine's CPU), the I/O floor (the same DI client
fetches every bucket's pages and discards them), and the archiver (the real engine writing a
local archive). Prints events/s, the archiver's peak RSS, bytes/event and wall / floor.
Targets: wall <= 1.15x floor; peak RSS < 200 MB whatever N is (bucket size is fixed by
``--events-per-day``, so N only changes the number of buckets).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from di_archiver.process_env import ALLOCATOR_ENV

ORG = "64a0c0ffee0000000000a001"
API_KEY = "bench-key"
NS = 1_000_000_000


@dataclass(frozen=True)
class Job:
    base_url: str
    now_ns: int
    span_ns: int
    bucket_minutes: int
    page_limit: int
    archive_dir: str


def serve_simulator(events: int, span_s: float, page_ms: int, now_ns: int, conn: Any) -> None:
    from di_archiver.simulator import (
        FaultConfig,
        LateIndexingConfig,
        OrgSpec,
        Simulator,
        SimulatorClock,
        SimulatorConfig,
    )

    config = SimulatorConfig(
        seed=42,
        orgs=(OrgSpec(org_id=ORG, event_count=events),),
        span_seconds=span_s,
        api_keys={API_KEY: ORG},
        faults=FaultConfig(rate_slow=1.0 if page_ms else 0.0, slow_ms=page_ms),
        late=LateIndexingConfig.off(),
        # JumpCloud's servers do not spend this machine's CPU: once warmed, every event is
        # served from memory, so a page costs the configured latency plus transfer.
        render_cache_bytes=4 * 1024**3,
    )
    started = time.perf_counter()
    sim = Simulator(config, clock=SimulatorClock(now_ns=now_ns))
    with sim.serve(host="127.0.0.1", port=0) as server:
        conn.send((server.base_url, time.perf_counter() - started))
        conn.recv()  # until the parent says stop


def _client(job: Job, *, prefetch: bool = True) -> Any:
    from di_archiver.adapters.di_auth import ApiKeyCredentials
    from di_archiver.adapters.di_client import DIClient

    return DIClient(
        base_url=job.base_url,
        credentials=ApiKeyCredentials(API_KEY),
        page_limit=job.page_limit,
        prefetch=prefetch,
    )


def _buckets(job: Job) -> list[tuple[int, int]]:
    width = job.bucket_minutes * 60 * NS
    first = (job.now_ns - job.span_ns) // width * width
    return [(s, min(s + width, job.now_ns)) for s in range(first, job.now_ns, width)]


def io_floor(job: Job, conn: Any) -> None:
    """Fetch every bucket's pages with the same client and throw them away."""
    client = _client(job)
    events = 0
    started = time.perf_counter()
    for start, end in _buckets(job):
        for page in client.iter_pages(ORG, start, end):
            events += len(page)
    wall = time.perf_counter() - started
    client.close()
    conn.send({"wall": wall, "events": events, "rss_mb": _peak_rss_mb(), "cpu": _cpu_s()})


def archive(job: Job, conn: Any) -> None:
    """Run the real engine over the whole span into a local archive."""
    from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
    from di_archiver.domain.engine import ArchiveEngine, EngineConfig

    width = job.bucket_minutes * 60 * NS
    config = EngineConfig(
        prefix="di",
        bucket_ns=width,
        lag_ns=0,
        settle_ns=0,
        lookback_ns=job.span_ns + width,
        max_events_per_bucket=2_000_000,
        time_budget_reserve_s=0.0,
    )
    # The engine's pipeline already fetches one page ahead (across buckets); the client's own
    # prefetch would only hold one more page in memory.
    client = _client(job, prefetch=False)
    engine = ArchiveEngine(
        source=client,
        store=LocalArchiveStore(job.archive_dir),
        checkpoints=FileCheckpointStore(Path(job.archive_dir) / "checkpoints.json"),
        config=config,
        clock=lambda: job.now_ns,
    )
    started = time.perf_counter()
    report = engine.run([ORG])
    wall = time.perf_counter() - started
    client.close()
    conn.send(
        {
            "wall": wall,
            "events": report.events,
            "bytes": report.bytes_written,
            "buckets": report.buckets,
            "rss_mb": _peak_rss_mb(),
            "cpu": _cpu_s(),
        }
    )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _in_process(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--events-per-day", type=int, default=500_000)
    parser.add_argument("--page-ms", type=int, default=100, help="latency of every page")
    parser.add_argument("--page-limit", type=int, default=10_000)
    parser.add_argument("--bucket-minutes", type=int, default=60)
    args = parser.parse_args(argv)

    # Measure the archiver (and the floor) in the process environment the Lambda gets.
    os.environ.update(ALLOCATOR_ENV)
    span_s = args.events / args.events_per_day * 86_400
    now_ns = (time.time_ns() // (3600 * NS)) * 3600 * NS
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    sim = ctx.Process(
        target=serve_simulator, args=(args.events, span_s, args.page_ms, now_ns, child)
    )
    sim.start()
    try:
        base_url, build_s = parent.recv()
        print(
            f"simulator: {args.events:,} events over {span_s / 3600:.1f} h built in {build_s:.1f} s"
        )
        with tempfile.TemporaryDirectory(prefix="di-bench-") as tmp:
            job = Job(base_url, now_ns, int(span_s * NS), args.bucket_minutes, args.page_limit, tmp)
            warm = _in_process(io_floor, job)
            print(f"warm-up     : every page rendered once in {warm['wall']:.1f} s (not measured)")
            floor = _in_process(io_floor, job)
            result = _in_process(archive, job)
    finally:
        parent.send("stop")
        sim.join(timeout=30)
        if sim.is_alive():
            sim.terminate()

    events, wall, fwall = result["events"], result["wall"], floor["wall"]
    rows = [
        ("page latency", f"{args.page_ms} ms per {args.page_limit}-event page"),
        ("events archived", f"{events:,} in {result['buckets']} buckets"),
        ("archive wall time", f"{wall:.2f} s ({events / wall:,.0f} events/s)"),
        ("I/O floor wall time", f"{fwall:.2f} s ({floor['events'] / fwall:,.0f} events/s)"),
        ("CPU archiver / floor", f"{result['cpu']:.1f} s / {floor['cpu']:.1f} s"),
        ("wall / floor", f"{wall / fwall:.3f} (target <= 1.15)"),
        ("peak RSS archiver", f"{result['rss_mb']:.0f} MB (target < 200)"),
        ("peak RSS I/O floor", f"{floor['rss_mb']:.0f} MB (the client alone, same pages)"),
        ("bytes/event (gzip)", f"{result['bytes'] / max(events, 1):.1f}"),
    ]
    for name, value in rows:
        print(f"{name:<20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
