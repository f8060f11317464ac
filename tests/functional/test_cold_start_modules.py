"""What one archive invocation loads, run as the cold-start benchmark lists it.

The benchmark's list comes from a Lambda-shaped run in a fresh process, AWS served by moto's
server and DI by the simulator on loopback: these tests hold its first-invocation savings
without timing anything.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[2] / "benchmarks" / "bench_read_once.py"


@pytest.fixture(scope="module")
def archive_run_modules() -> set[str]:
    spec = importlib.util.spec_from_file_location("bench_read_once", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look themselves up
    try:
        spec.loader.exec_module(bench)
        guard = bench._runtime_only(["di-archiver"], "di_archiver")
        listed, _ = bench.list_run_modules(guard + bench._RUN_OURS, None)
    finally:
        del sys.modules[spec.name]
    return set(listed)


def test_an_archive_run_uses_botocore_clients_and_never_imports_boto3(
    archive_run_modules: set[str],
) -> None:
    # Given one archive invocation in a fresh process (the fixture)
    # Then it wrote through botocore clients
    assert {"botocore.session", "di_archiver.adapters.s3_store"} <= archive_run_modules
    # And its objects, each under the multipart threshold, as single PutObjects: s3transfer
    # (and the multiprocessing it imports) never loaded
    assert not {
        name
        for name in archive_run_modules
        if name.partition(".")[0] in {"s3transfer", "multiprocessing"}
    }
    # And boto3 (its resource layer and docs: about 2 % of a first invocation) never loaded
    assert not {name for name in archive_run_modules if name.partition(".")[0] == "boto3"}
