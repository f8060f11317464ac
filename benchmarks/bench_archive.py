"""How close does the archive come to the DI API's rate ceiling, and what memory does it need?

    uv run python benchmarks/bench_archive.py                                  # 1 org, 1M events
    uv run python benchmarks/bench_archive.py --events 3000000
    uv run python benchmarks/bench_archive.py --orgs 50 --events 20000 --page-ms 200
    uv run python benchmarks/bench_archive.py --repeat 3                      # min/median/max

The simulator runs in its own process and behaves like a remote API: every DI request takes
``--page-ms`` before it is answered, and it meters one credential at ``--rate`` requests/s
(429 with ``Retry-After`` beyond that). Every event is rendered before the clock starts, so the
server costs latency, not this machine's CPU. Against it, each in its own process (so each
peak RSS is its own):

* **bare pager**: one sequential cursor per org over the whole window with raw HTTP, the body
  never parsed: the physical floor of one cursor (``~latency x pages``);
* **archive**: the real engine (``--concurrency`` buckets in flight under one rate limiter)
  writing a local archive.

It prints wall time, events/s, peak RSS and two ratios: archive / bare pager (below 1 means the
parallel buckets beat one cursor) and archive / ceiling, where the ceiling is the time the
archive's own requests need at the rate limit (``requests / rate``; a page holds at most
``--page-limit`` events, so the events ceiling is ``rate x page-limit`` events/s). With several
orgs it also prints when the slowest org finished against the mean (starvation).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from di_archiver.process_env import ALLOCATOR_ENV

API_KEY = "bench-key"
NS = 1_000_000_000
EVENTS_PATH = "/insights/directory/v1/events"


def org_ids(count: int) -> list[str]:
    return [f"64a0c0ffee000000000{i + 1:05x}" for i in range(count)]


@dataclass(frozen=True)
class Job:
    base_url: str
    orgs: tuple[str, ...]
    now_ns: int
    span_ns: int
    bucket_minutes: int
    page_limit: int
    rate: float
    concurrency: int
    archive_dir: str


def serve_simulator(args: argparse.Namespace, span_s: float, now_ns: int, conn: Any) -> None:
    from di_archiver.simulator import (
        FaultConfig,
        LateIndexingConfig,
        OrgSpec,
        RateLimitConfig,
        Simulator,
        SimulatorClock,
        SimulatorConfig,
    )

    orgs = org_ids(args.orgs)
    config = SimulatorConfig(
        seed=42,
        orgs=tuple(OrgSpec(org_id=o, event_count=args.events) for o in orgs),
        span_seconds=span_s,
        api_keys={API_KEY: orgs[0]},  # one MSP key; x-org-id picks the org
        faults=FaultConfig.off(),
        late=LateIndexingConfig.off(),
        latency_ms=args.page_ms,
        rate_limit=RateLimitConfig(per_second=args.rate, burst=max(1, int(args.rate))),
        render_cache_bytes=8 * 1024**3,
    )
    started = time.perf_counter()
    sim = Simulator(config, clock=SimulatorClock(now_ns=now_ns))
    # Render every event now: JumpCloud's servers do not spend this machine's CPU.
    for org in orgs:
        corpus = sim.corpus(org)
        for pos in range(len(corpus)):
            corpus.event_bytes(pos)
    with sim.serve(host="127.0.0.1", port=0) as server:
        conn.send((server.base_url, time.perf_counter() - started))
        while True:
            command = conn.recv()
            if command == "stats":
                conn.send(dict(sim.stats))
                sim.reset_stats()
            else:
                return


def bare_pager(job: Job, conn: Any) -> None:
    """One cursor per org over the whole window; headers decide, bodies are only received."""
    import httpx

    from di_archiver.timestamps import format_timestamp_ns

    started = time.perf_counter()
    events = requests = 0
    with httpx.Client(timeout=httpx.Timeout(120.0)) as http:
        for org in job.orgs:
            body: dict[str, Any] = {
                "service": ["all"],
                "start_time": format_timestamp_ns(job.now_ns - job.span_ns - NS * 3600),
                "end_time": format_timestamp_ns(job.now_ns),
                "sort": "ASC",
                "limit": job.page_limit,
            }
            while True:
                response = http.post(
                    job.base_url + EVENTS_PATH,
                    json=body,
                    headers={"x-api-key": API_KEY, "x-org-id": org},
                )
                requests += 1
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                response.raise_for_status()
                count = int(response.headers["x-result-count"])
                events += count
                if count < int(response.headers["x-limit"]):
                    break
                body["search_after"] = json.loads(response.headers["x-search_after"])
    wall = time.perf_counter() - started
    conn.send({"wall": wall, "events": events, "requests": requests, "rss_mb": _peak_rss_mb()})


class _OrgTimes:
    """Records when each org finished (the engine reports each org once)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.done: dict[str, float] = {}

    def on_bucket(self, result: Any) -> None:
        return None

    def on_org(self, result: Any) -> None:
        self.done[result.org_id] = time.perf_counter() - self.started

    def on_warning(self, message: str, **fields: object) -> None:
        return None


def archive(job: Job, conn: Any) -> None:
    """Run the real engine over the whole window into a local archive."""
    from di_archiver.adapters.di_auth import ApiKeyCredentials
    from di_archiver.adapters.di_client import DIClient
    from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
    from di_archiver.adapters.rate_limit import RateLimiter
    from di_archiver.domain.engine import ArchiveEngine, EngineConfig

    width = job.bucket_minutes * 60 * NS
    knobs: dict[str, Any] = {
        "prefix": "di",
        "bucket_ns": width,
        "lag_ns": 0,
        "settle_ns": 0,
        "lookback_ns": job.span_ns + width,
        "max_events_per_bucket": 2_000_000,
        "time_budget_reserve_s": 0.0,
        "concurrency": job.concurrency,
    }
    limiter = RateLimiter(rate_per_s=job.rate)
    client = DIClient(
        base_url=job.base_url,
        credentials=ApiKeyCredentials(API_KEY),
        page_limit=job.page_limit,
        rate_limiter=limiter,
    )
    started = time.perf_counter()
    times = _OrgTimes(started)
    engine = ArchiveEngine(
        source=client,
        store=LocalArchiveStore(job.archive_dir),
        checkpoints=FileCheckpointStore(Path(job.archive_dir) / "checkpoints.json"),
        config=EngineConfig(**knobs),
        clock=lambda: job.now_ns,
        observer=times,
    )
    report = engine.run(list(job.orgs))
    wall = time.perf_counter() - started
    client.close()
    conn.send(
        {
            "wall": wall,
            "events": report.events,
            "bytes": report.bytes_written,
            "buckets": report.buckets,
            "requests": client.stats.requests,
            "throttled": client.stats.throttles,
            "rss_mb": _peak_rss_mb(),
            "cpu": _cpu_s(),
            "org_done": sorted(times.done.values()),
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


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median (min, max)`` of repeated measurements, or the single value."""
    if len(values) == 1:
        return fmt.format(values[0])
    return (
        f"{fmt.format(statistics.median(values))} "
        f"(min {fmt.format(min(values))}, max {fmt.format(max(values))}, n={len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per org")
    parser.add_argument("--orgs", type=int, default=1, help="organisations behind one key")
    parser.add_argument("--events-per-day", type=int, default=500_000)
    parser.add_argument("--page-ms", type=int, default=1000, help="latency of every request")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s of the key")
    parser.add_argument("--concurrency", type=int, default=14, help="buckets in flight")
    parser.add_argument("--page-limit", type=int, default=10_000)
    parser.add_argument("--bucket-minutes", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side")
    parser.add_argument("--skip-bare", action="store_true", help="measure the archive only")
    args = parser.parse_args(argv)

    # Measure the archiver in the process environment the Lambda gets.
    os.environ.update(ALLOCATOR_ENV)
    span_s = args.events / args.events_per_day * 86_400
    now_ns = (time.time_ns() // (3600 * NS)) * 3600 * NS
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    sim = ctx.Process(target=serve_simulator, args=(args, span_s, now_ns, child))
    sim.start()
    bares: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    try:
        base_url, build_s = parent.recv()
        print(
            f"simulator: {args.orgs} org(s) x {args.events:,} events over {span_s / 3600:.1f} h, "
            f"{args.page_ms} ms per request, {args.rate:g} requests/s per key; built and "
            f"rendered in {build_s:.1f} s (not measured)",
            flush=True,
        )
        pages = Job(
            base_url,
            tuple(org_ids(args.orgs)),
            now_ns,
            int(span_s * NS),
            args.bucket_minutes,
            args.page_limit,
            args.rate,
            args.concurrency,
            "",
        )
        for _ in range(args.repeat):
            if not args.skip_bare:
                bares.append(_in_process(bare_pager, pages))
                parent.send("stats")
                parent.recv()
            with tempfile.TemporaryDirectory(prefix="di-bench-") as tmp:
                result = _in_process(archive, replace(pages, archive_dir=tmp))
                parent.send("stats")
                result["server"] = parent.recv()
                runs.append(result)
            print(
                f"  run: archive {result['wall']:.2f} s"
                + (f", bare pager {bares[-1]['wall']:.2f} s" if bares else ""),
                flush=True,
            )
    finally:
        parent.send("stop")
        sim.join(timeout=30)
        if sim.is_alive():
            sim.terminate()

    last = runs[-1]
    events = last["events"]
    walls = [r["wall"] for r in runs]
    ceilings = [r["requests"] / args.rate for r in runs]
    rows = [
        ("events archived", f"{events:,} in {last['buckets']} buckets, {args.orgs} org(s)"),
        (
            "archive requests",
            f"{last['requests']} ({last['throttled']} answered 429; server "
            f"refused {last['server'].get('rate_limited', 0)})",
        ),
        ("archive wall", f"{_spread(walls)} s"),
        ("archive events/s", _spread([r["events"] / r["wall"] for r in runs], "{:,.0f}")),
        (
            "ceiling (req / rate)",
            f"{_spread(ceilings)} s = {args.rate * args.page_limit:,.0f} events/s at full pages",
        ),
        (
            "archive / ceiling",
            f"{_spread([w / c for w, c in zip(walls, ceilings, strict=True)], '{:.3f}')}"
            " (target <= 1.25; 1 / this = share of the ceiling)",
        ),
        (
            "peak RSS archive",
            f"{_spread([r['rss_mb'] for r in runs], '{:.0f}')} MB (target <= 150)",
        ),
        ("CPU archive", f"{_spread([r['cpu'] for r in runs], '{:.1f}')} s"),
        ("bytes/event (gzip)", f"{last['bytes'] / max(events, 1):.1f}"),
    ]
    if bares:
        bwalls = [b["wall"] for b in bares]
        rows += [
            (
                "bare pager wall",
                f"{_spread(bwalls)} s ({bares[-1]['requests']} requests, "
                f"{bares[-1]['events']:,} events)",
            ),
            (
                "archive / bare pager",
                f"{_spread([w / b for w, b in zip(walls, bwalls, strict=True)], '{:.3f}')}"
                " (target <= 1.0)",
            ),
        ]
    if args.orgs > 1:
        done = last["org_done"]
        mean = statistics.fmean(done)
        rows.append(
            (
                "org finish times",
                f"mean {mean:.2f} s, slowest {max(done):.2f} s "
                f"= {max(done) / mean:.2f} x mean (target <= 2)",
            )
        )
    for name, value in rows:
        print(f"{name:<22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
