"""Benchmarks are scripts, not tests, but they must still start: each parses its arguments.

A benchmark that breaks when the code under it changes (a renamed setting, a moved module) is
otherwise found only when someone needs its figures.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK_DIR = Path(__file__).parents[2] / "benchmarks"
BENCHMARKS = sorted(BENCHMARK_DIR.glob("bench_*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.stem for path in BENCHMARKS])
def test_a_benchmark_script_starts_and_explains_its_arguments(script: Path) -> None:
    # When the script is asked for its help / Then it answers, naming its options
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def _bench_read_once(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_read_once", BENCHMARK_DIR / "bench_read_once.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def test_the_cold_benchmark_measures_only_what_the_lambda_bundle_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the cold benchmark's guard for di-archiver's runtime dependencies
    bench = _bench_read_once(monkeypatch)
    guard = bench._runtime_only(["di-archiver"], "di_archiver")
    # When a process behind it imports httpx (whose command line wants click) and then click
    probe = (
        "import sys, httpx\n"
        "assert 'click' not in sys.modules, 'httpx loaded click'\n"
        "try:\n    import click\nexcept ModuleNotFoundError:\n    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", guard + probe],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then the runtime dependencies load, and a dev-only package is absent as in the bundle
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"
    packages = bench.runtime_packages(["di-archiver"])
    assert {"httpx", "msgspec", "boto3", "aws_lambda_powertools", "aws_xray_sdk"} <= packages
    assert not {"click", "pygments", "pytest", "moto"} & packages
