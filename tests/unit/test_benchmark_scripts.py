"""Benchmarks are scripts, not tests, but they must still start: each parses its arguments.

A benchmark that breaks when the code under it changes (a renamed setting, a moved module) is
otherwise found only when someone needs its figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parents[2] / "benchmarks").glob("bench_*.py"))


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
