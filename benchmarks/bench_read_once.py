"""Read-once performance: one core's events/s, request spacing, peak RSS and cold start.

    uv run python benchmarks/bench_read_once.py speed --events 200000 [--exporter FILE]
    uv run python benchmarks/bench_read_once.py spacing --events 100000 --page-ms 1000
    uv run python benchmarks/bench_read_once.py memory --events 1000000 --events-per-day 1000000
    uv run python benchmarks/bench_read_once.py cold [--exporter FILE]

Every figure is measured ``--repeat`` times (min / median / max) in fresh processes, so each
peak RSS and CPU time is the process's own. The simulator runs in its own process with every
event rendered before the clock starts (so it costs latency, not this machine's CPU) and, with
``--pin``, on the other core than the measured process.

* **bare pager**: the same buckets' pages with raw httpx, bodies received and never parsed
  (``+gzip``: each body also deflated at the level bucket objects use, the least an archive
  must do with it);
* **di-archiver**: the real engine with one bucket in flight (one cursor, as the pager), the
  DI client and a local archive; ``memory`` runs it with ``--concurrency`` buckets in flight
  (default: the settings' default, what a deployment runs);
* **JumpCloud's exporter** (``--exporter``, the worker of TheJumpCloud/JumpCloud-Serverless
  ``AWS/DirectoryInsights/get-jcdirectoryinsights.py``; not part of this project, give its
  path): its ``jc_worker`` driven with one SQS record per bucket, S3 and Secrets Manager by moto
  in-process, its API base URL pointed at the simulator. Its ``croniter`` import (used only by its
  orchestrator) is stubbed, which only makes its cold start cheaper.

``spacing`` reports the mean time between consecutive requests at ``--page-ms`` latency;
``cold`` the CPU time (user + system) of whole processes that import what a first Lambda
invocation imports: di-archiver's handler plus every module an archive run loads (listed by
running one), against the exporter module's imports; both from cached bytecode. Each measured
process can import only what its side deploys (stdlib, plus di-archiver's runtime dependencies
and their own, or boto3's and requests' for the exporter): this environment also holds test and
lint tools, and httpx loads its command line (click, pygments: ~30 ms) wherever click is
installed; the Lambda bundle, built from the runtime dependencies alone, has no click.
``speed``, ``spacing`` and ``memory`` put every contender's temporary files, di-archiver's local
archive among them, in ``--tmp-dir`` (default: the system's temporary directory). With
``--tmp-dir /dev/shm`` each side writes to memory, as the exporter's moto S3 does, and the
figures leave out the disk: on the journal-less ext4 of the machine these figures come from,
creating a file scans recently deleted inodes for about half a millisecond of kernel CPU.
With ``--instructions`` (valgrind on PATH) ``cold`` also counts each process's instructions once,
which vary far less than CPU time on a shared machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from di_archiver.archive_format import FAST_LEVEL
from di_archiver.process_env import ALLOCATOR_ENV

ORG = "64a0c0ffee0000000000a001"
API_KEY = "bench-key-0123456789"
NS = 1_000_000_000
EVENTS_PATH = "/insights/directory/v1/events"
SIM_CORE, WORK_CORE = 1, 0


@dataclass(frozen=True)
class Job:
    base_url: str
    now_ns: int
    span_ns: int
    bucket_minutes: int
    page_limit: int
    pin: bool
    exporter: str | None = None
    concurrency: int = 1


def _pin(core: int, enabled: bool) -> None:
    if enabled and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def serve_simulator(  # noqa: PLR0917 (a spawned process's arguments)
    events: int, span_s: float, page_ms: int, now_ns: int, pin: bool, conn: Any
) -> None:
    from di_archiver.simulator import (
        FaultConfig,
        LateIndexingConfig,
        OrgSpec,
        Simulator,
        SimulatorClock,
        SimulatorConfig,
    )

    _pin(SIM_CORE, pin)
    config = SimulatorConfig(
        seed=42,
        orgs=(OrgSpec(org_id=ORG, event_count=events),),
        span_seconds=span_s,
        api_keys={API_KEY: ORG},
        faults=FaultConfig.off(),
        late=LateIndexingConfig.off(),
        latency_ms=page_ms,
        render_cache_bytes=8 * 1024**3,
    )
    started = time.perf_counter()
    sim = Simulator(config, clock=SimulatorClock(now_ns=now_ns))
    corpus = sim.corpus(ORG)
    for pos in range(len(corpus)):
        corpus.event_bytes(pos)
    with sim.serve(host="127.0.0.1", port=0) as server:
        conn.send((server.base_url, time.perf_counter() - started))
        conn.recv()


def _buckets(job: Job) -> list[tuple[int, int]]:
    width = job.bucket_minutes * 60 * NS
    first = (job.now_ns - job.span_ns) // width * width
    return [(s, min(s + width, job.now_ns)) for s in range(first, job.now_ns, width)]


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def bare_pager(job: Job, deflate: bool, conn: Any) -> None:
    """Each bucket's pages with raw httpx: headers decide, bodies are received (and deflated)."""
    import httpx

    from di_archiver.timestamps import format_timestamp_ns

    _pin(WORK_CORE, job.pin)
    events = requests = 0
    started = time.perf_counter()
    with httpx.Client(timeout=httpx.Timeout(120.0)) as http:
        for start, end in _buckets(job):
            sink = zlib.compressobj(FAST_LEVEL, zlib.DEFLATED, 31) if deflate else None
            body: dict[str, Any] = {
                "service": ["all"],
                "start_time": format_timestamp_ns(start),
                "end_time": format_timestamp_ns(end),
                "sort": "ASC",
                "limit": job.page_limit,
            }
            while True:
                response = http.post(
                    job.base_url + EVENTS_PATH,
                    json=body,
                    headers={"x-api-key": API_KEY, "x-org-id": ORG},
                )
                requests += 1
                content = response.content
                if sink is not None:
                    sink.compress(content)
                count = int(response.headers["x-result-count"])
                events += count
                if count < int(response.headers["x-limit"]):
                    break
                body["search_after"] = json.loads(response.headers["x-search_after"])
            if sink is not None:
                sink.flush()
    wall = time.perf_counter() - started
    conn.send({"wall": wall, "events": events, "requests": requests, **_usage()})


def archive(job: Job, conn: Any) -> None:
    """The real engine, ``job.concurrency`` buckets in flight, into a local archive."""
    from di_archiver.adapters.di_auth import ApiKeyCredentials
    from di_archiver.adapters.di_client import DIClient
    from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
    from di_archiver.domain.engine import ArchiveEngine, EngineConfig

    _pin(WORK_CORE, job.pin)
    width = job.bucket_minutes * 60 * NS
    with tempfile.TemporaryDirectory(prefix="di-bench-") as tmp:
        config = EngineConfig(
            prefix="di",
            bucket_ns=width,
            lag_ns=0,
            settle_ns=0,
            lookback_ns=job.span_ns + width,
            max_events_per_bucket=2_000_000,
            max_bucket_bytes=8 * 1024**3,
            time_budget_reserve_s=0.0,
            concurrency=job.concurrency,
        )
        client = DIClient(
            base_url=job.base_url, credentials=ApiKeyCredentials(API_KEY), page_limit=job.page_limit
        )
        engine = ArchiveEngine(
            source=client,
            store=LocalArchiveStore(tmp),
            checkpoints=FileCheckpointStore(Path(tmp) / "checkpoints.json"),
            config=config,
            clock=lambda: job.now_ns,
        )
        started = time.perf_counter()
        report = engine.run([ORG])
        wall = time.perf_counter() - started
        client.close()
    conn.send(
        {"wall": wall, "events": report.events, "requests": client.stats.requests, **_usage()}
    )


def _load_exporter(path: str, base_url: str) -> types.ModuleType:
    import importlib.util

    # Its orchestrator needs croniter (not installed here); the worker never calls it.
    sys.modules.setdefault("croniter", types.SimpleNamespace(croniter=None))  # type: ignore[arg-type]
    spec = importlib.util.spec_from_file_location("jc_exporter", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.get_jc_base_url = lambda: base_url  # the simulator instead of api.jumpcloud.com
    return module


def exporter(job: Job, conn: Any) -> None:
    """JumpCloud's worker, one SQS record per bucket, S3 and Secrets Manager by moto."""
    import boto3
    from moto import mock_aws

    from di_archiver.timestamps import format_timestamp_ns

    assert job.exporter is not None
    _pin(WORK_CORE, job.pin)
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        boto3.client("s3").create_bucket(Bucket="exporter-bench")
        arn = boto3.client("secretsmanager").create_secret(Name="jc", SecretString=API_KEY)["ARN"]
        os.environ.update(JcApiKeyArn=arn, BucketName="exporter-bench")
        module = _load_exporter(job.exporter, job.base_url)
        records = [
            {
                "body": json.dumps(
                    {
                        "service": "all",
                        "start_time": format_timestamp_ns(start),
                        "end_time": format_timestamp_ns(end),
                        "org_id": ORG,
                    }
                )
            }
            for start, end in _buckets(job)
        ]
        os.chdir(tmp)
        started = time.perf_counter()
        for record in records:
            module.jc_worker({"Records": [record]}, None)
        wall = time.perf_counter() - started
        events = 0
        s3 = boto3.client("s3")
        for item in s3.list_objects_v2(Bucket="exporter-bench").get("Contents", []):
            body = s3.get_object(Bucket="exporter-bench", Key=item["Key"])["Body"].read()
            events += len(json.loads(gzip.decompress(body)))
    conn.send({"wall": wall, "events": events, "requests": 0, **_usage()})


def _child(target: Callable[..., None], *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(*args, child))
    process.start()
    result: dict[str, Any] = parent.recv()
    process.join()
    return result


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def _with_simulator(args: argparse.Namespace, work: Callable[[Job], None]) -> None:
    os.environ.update(ALLOCATOR_ENV)
    if args.tmp_dir:
        # Every contender's temporary files (di-archiver's local archive and spooled objects
        # among them) go here; the children inherit it.
        os.environ["TMPDIR"] = args.tmp_dir
        tempfile.tempdir = None
    print(f"temporary files and di-archiver's local archive in {tempfile.gettempdir()}")
    span_s = args.events / args.events_per_day * 86_400
    now_ns = (time.time_ns() // (3600 * NS)) * 3600 * NS
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    sim = ctx.Process(
        target=serve_simulator,
        args=(args.events, span_s, args.page_ms, now_ns, args.pin, child),
    )
    sim.start()
    try:
        base_url, build_s = parent.recv()
        print(
            f"simulator: {args.events:,} events over {span_s / 3600:.1f} h "
            f"({args.events_per_day:,}/day), {args.page_ms} ms per request, "
            f"rendered in {build_s:.0f} s; min / median / max of {args.repeat} runs"
        )
        job = Job(
            base_url,
            now_ns,
            int(span_s * NS),
            args.bucket_minutes,
            args.page_limit,
            args.pin,
            getattr(args, "exporter", None),
            getattr(args, "concurrency", 1),
        )
        _child(bare_pager, job, False)  # warm-up: every page rendered and cached once
        work(job)
    finally:
        parent.send("stop")
        sim.join(timeout=30)
        if sim.is_alive():
            sim.terminate()


def cmd_speed(args: argparse.Namespace) -> None:
    def work(job: Job) -> None:
        rows: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeat):  # interleaved, so machine noise hits every contender
            for name, target, extra in (
                ("bare pager", bare_pager, (False,)),
                ("bare pager +gzip", bare_pager, (True,)),
                ("di-archiver", archive, ()),
                *((("JumpCloud exporter", exporter, ()),) if job.exporter else ()),
            ):
                rows.setdefault(name, []).append(_child(target, job, *extra))
        speed = {n: [r["events"] / r["wall"] for r in rs] for n, rs in rows.items()}
        for name, results in rows.items():
            events = {r["events"] for r in results}
            print(
                f"{name:<20} events/s {_spread(speed[name])}  CPU s "
                f"{_spread([r['cpu'] for r in results], '{:.1f}')}  peak RSS MB "
                f"{_spread([r['rss_mb'] for r in results])}  events {sorted(events)}"
            )
        ours = statistics.median(speed["di-archiver"])
        for name, values in speed.items():
            if name != "di-archiver":
                print(f"di-archiver / {name:<20}: {ours / statistics.median(values):.2f}x")

    _with_simulator(args, work)


def cmd_spacing(args: argparse.Namespace) -> None:
    def work(job: Job) -> None:
        rows: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for name, target, extra in (
                ("bare pager", bare_pager, (False,)),
                ("di-archiver", archive, ()),
            ):
                result = _child(target, job, *extra)
                rows.setdefault(name, []).append(result["wall"] / result["requests"])
        for name, spacing in rows.items():
            print(f"{name:<12} mean request spacing s {_spread(spacing, '{:.3f}')}")
        ratio = statistics.median(rows["di-archiver"]) / statistics.median(rows["bare pager"])
        print(f"di-archiver / bare pager: {ratio:.3f} (target <= 1.05)")

    _with_simulator(args, work)


def cmd_memory(args: argparse.Namespace) -> None:
    def work(job: Job) -> None:
        results = [_child(archive, job) for _ in range(args.repeat)]
        print(
            f"di-archiver ({job.concurrency} bucket(s) in flight) peak RSS MB "
            f"{_spread([r['rss_mb'] for r in results])}  events/s "
            f"{_spread([r['events'] / r['wall'] for r in results])}  events "
            f"{sorted({r['events'] for r in results})}"
        )

    _with_simulator(args, work)


# Prepended to each measured process: a package outside ``allowed`` (the dependency closure of
# what that side deploys) is refused as if absent. The benchmark runs in the dev environment,
# which also holds test and lint tools, and runtime modules take optional packages they find:
# httpx imports its command line when click is installed (click and pygments, ~30 ms), which a
# Lambda bundle of the runtime dependencies never holds. A refused name is still looked up along
# the path first, as the deployed import would, so the lookup costs what it costs there.
_RUNTIME_ONLY = """
import sys
from importlib.machinery import PathFinder
class RuntimeOnly:
    allowed = frozenset({allowed!r}) | sys.stdlib_module_names
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in cls.allowed:
            return None
        PathFinder.find_spec(name, path)
        raise ModuleNotFoundError(f"No module named {{name!r}} (not deployed)", name=name)
sys.meta_path.insert(0, RuntimeOnly)
"""

_COLD_OURS = """
import importlib, sys
import di_archiver.handler
for name in {modules!r}:
    importlib.import_module(name)
"""

_COLD_EXPORTER = """
import importlib, importlib.util, sys, types
sys.modules.setdefault("croniter", types.SimpleNamespace(croniter=None))
spec = importlib.util.spec_from_file_location("jc_exporter", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
for name in {modules!r}:
    importlib.import_module(name)
"""

# What a first invocation loads is listed by running one in a process of its own that imports
# nothing else: AWS is moto's server and DI the simulator, both on loopback in the benchmark's
# process. So the list holds exactly what that side's run loads, the AWS SDK included, and
# nothing a mocking harness loaded for itself (moto imports boto3 and s3transfer whether or not
# the run uses them). Each side's run is preceded by its ``_RUNTIME_ONLY`` preamble.
_RUN_OURS = """
before = set(sys.modules)
from di_archiver import handler
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "f", 512, "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    def get_remaining_time_in_millis(self): return 900_000
handler.lambda_handler({"mode": "archive"}, Context())
loaded = sorted(set(sys.modules) - before - {"__main__", "__mp_main__"})
import json
print("MODULES", json.dumps(loaded))
"""

_RUN_EXPORTER = """
import importlib.util, json, os, types
before = set(sys.modules)
sys.modules.setdefault("croniter", types.SimpleNamespace(croniter=None))
spec = importlib.util.spec_from_file_location("jc_exporter", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.get_jc_base_url = lambda: os.environ["BENCH_DI_BASE_URL"]
body = json.dumps({{"service": "all", "start_time": "2000-01-01T00:00:00Z",
    "end_time": "2100-01-01T00:00:00Z", "org_id": os.environ["BENCH_DI_ORG_ID"]}})
module.jc_worker({{"Records": [{{"body": body}}]}}, None)
harness = {{"__main__", "__mp_main__", "croniter", "jc_exporter"}}
loaded = sorted(set(sys.modules) - before - harness)
print("MODULES", json.dumps(loaded))
"""


def _run_modules(code: str, env: dict[str, str]) -> list[str]:
    """The modules one run loads, run as ``code`` in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="di-bench-run-") as cwd:  # the exporter writes here
        output = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=cwd,
        ).stdout
    listed: list[str] = json.loads(output.split("MODULES ", 1)[1])
    return listed


def list_run_modules(ours: str, exporter_code: str | None) -> tuple[list[str], list[str] | None]:
    """Run one archive invocation of di-archiver (and one worker run of the exporter, given its
    code) against loopback AWS and DI, each in its own process; return what each loaded."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from di_archiver.simulator import Simulator, SimulatorConfig
    from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, OrgSpec

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs each request
    aws = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    aws.start()
    host, port = aws.get_host_and_port()
    sim = Simulator(SimulatorConfig.quiet(orgs=(OrgSpec(event_count=500),), span_seconds=7200.0))
    try:
        with sim.serve(port=0) as server:
            env = {
                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "x",
                "AWS_SECRET_ACCESS_KEY": "x",
            }
            session = boto3.Session(
                region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
            )
            s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
            secrets = session.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"])
            s3.create_bucket(Bucket="di-bench-archive")
            secrets.create_secret(Name="s", SecretString=json.dumps({"api_key": DEMO_API_KEY}))
            listed = _run_modules(
                ours,
                {
                    **env,
                    "DI_ARCHIVER_ORG_IDS": DEMO_ORG_ID,
                    "DI_ARCHIVER_ARCHIVE_BUCKET": "di-bench-archive",
                    "DI_ARCHIVER_SECRET_ID": "s",
                    "DI_ARCHIVER_BASE_URL": server.base_url,
                    "DI_ARCHIVER_LOOKBACK_DAYS": "1",
                },
            )
            theirs = None
            if exporter_code is not None:
                s3.create_bucket(Bucket="di-bench-exporter")
                arn = secrets.create_secret(Name="jc", SecretString=DEMO_API_KEY)["ARN"]
                theirs = _run_modules(
                    exporter_code,
                    {
                        **env,
                        "BucketName": "di-bench-exporter",
                        "JcApiKeyArn": arn,
                        "BENCH_DI_BASE_URL": server.base_url,
                        "BENCH_DI_ORG_ID": DEMO_ORG_ID,
                    },
                )
    finally:
        aws.stop()
    return listed, theirs


def runtime_packages(requirements: list[str]) -> set[str]:
    """Top-level import names of ``requirements`` and everything they require, recursively
    (extras and environment markers honoured), as installed here."""
    from importlib import metadata

    # pytest depends on packaging, so the dev environment this benchmark runs in has it.
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    extras_of: dict[str, set[str]] = {}
    todo = [Requirement(spec) for spec in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        known = extras_of.get(name)
        if known is not None and requirement.extras <= known:
            continue
        extras = extras_of[name] = (known or set()) | requirement.extras
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            needed = Requirement(spec)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in extras | {""}
            ):
                todo.append(needed)
    return {
        top
        for top, dists in metadata.packages_distributions().items()
        if any(canonicalize_name(dist) in extras_of for dist in dists)
    }


def _runtime_only(requirements: list[str], *own: str) -> str:
    return _RUNTIME_ONLY.format(allowed=sorted(runtime_packages(requirements) | set(own)))


def _cpu_of(code: str, env: dict[str, str] | None = None) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _instructions_of(code: str, env: dict[str, str]) -> int:
    """Instructions one process executes (valgrind's callgrind, about 50x slower): unlike CPU
    time on a shared machine they barely vary, so two versions compare within one run."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**env, "PYTHONHASHSEED": "0"},  # the same string hashes, the same dict layouts
    )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if collected is None:
        raise SystemExit(f"valgrind printed no instruction count: {done.stderr[-500:]}")
    return int(collected.group(1))


def cmd_cold(args: argparse.Namespace) -> None:
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind on PATH")
    # What the Lambda asset holds: the project's runtime dependencies, and boto3 from the runtime.
    ours_only = _runtime_only(["di-archiver"], "di_archiver")
    # Its function imports boto3 and requests (croniter is stubbed before anything imports it).
    theirs_only = _runtime_only(["boto3", "requests"])
    listed, theirs = list_run_modules(
        ours_only + _RUN_OURS,
        theirs_only + _RUN_EXPORTER.format(path=args.exporter) if args.exporter else None,
    )
    print(f"di-archiver first invocation: handler + {len(listed)} modules an archive run loads")
    codes = {"di-archiver": ours_only + _COLD_OURS.format(modules=listed)}
    if args.exporter:
        assert theirs is not None
        print(
            f"JumpCloud exporter first invocation: its module + {len(theirs)} modules a run loads"
        )
        codes["JumpCloud exporter"] = theirs_only + _COLD_EXPORTER.format(
            path=args.exporter, modules=theirs
        )
    codes["bare interpreter"] = "pass"
    rows: dict[str, list[float]] = {name: [] for name in codes}
    with tempfile.TemporaryDirectory(prefix="di-bench-pyc-") as pycache:
        # Both sides start from cached bytecode, as a Lambda does (the bundle ships .pyc files):
        # one untimed run of each fills a private cache, whatever PYTHONDONTWRITEBYTECODE says.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        for code in codes.values():
            _cpu_of(code, env)
        # Interleaved, so the load of a shared machine hits every side alike.
        for _ in range(args.repeat):
            for name, code in codes.items():
                rows[name].append(_cpu_of(code, env))
        # Counted while the private bytecode cache exists: without it each side compiles.
        counted = (
            {name: _instructions_of(code, env) for name, code in codes.items()}
            if args.instructions
            else {}
        )
    for name, values in rows.items():
        print(f"{name:<20} process CPU s {_spread(values, '{:.3f}')}")
    for name, count in counted.items():
        print(f"{name:<20} instructions {count / 1e6:,.1f}M")
    if counted and args.exporter:
        ratio = counted["di-archiver"] / counted["JumpCloud exporter"]
        print(f"di-archiver / exporter instructions: {ratio:.3f}x")
    if args.exporter:
        ratio = statistics.median(rows["di-archiver"]) / statistics.median(
            rows["JumpCloud exporter"]
        )
        print(f"di-archiver / exporter: {ratio:.2f}x (target <= 1.0)")


def _default_concurrency() -> int:
    from di_archiver.settings import ArchiverSettings

    default: int = ArchiverSettings.default_of("concurrency")
    return default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, events, page_ms in (
        ("speed", 200_000, 0),
        ("spacing", 100_000, 1000),
        ("memory", 1_000_000, 0),
    ):
        p = sub.add_parser(name)
        p.add_argument(
            "--tmp-dir",
            default="",
            help="where temporary files and di-archiver's local archive go (default: the "
            "system's temporary directory; /dev/shm puts them in memory, as the exporter's moto "
            "S3 keeps its objects)",
        )
        p.add_argument("--events", type=int, default=events)
        p.add_argument("--events-per-day", type=int, default=500_000)
        p.add_argument("--page-ms", type=int, default=page_ms)
        p.add_argument("--page-limit", type=int, default=10_000)
        p.add_argument("--bucket-minutes", type=int, default=60)
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True)
        if name == "speed":
            p.add_argument("--exporter", help="path of JumpCloud's get-jcdirectoryinsights.py")
        if name == "memory":
            # What a deployment holds: the settings' default buckets in flight, not one cursor.
            p.add_argument("--concurrency", type=int, default=_default_concurrency())
    cold = sub.add_parser("cold")
    cold.add_argument("--repeat", type=int, default=5)
    cold.add_argument("--exporter", help="path of JumpCloud's get-jcdirectoryinsights.py")
    cold.add_argument(
        "--instructions", action="store_true", help="also count instructions (needs valgrind)"
    )
    args = parser.parse_args(argv)
    {"speed": cmd_speed, "spacing": cmd_spacing, "memory": cmd_memory, "cold": cmd_cold}[
        args.command
    ](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
