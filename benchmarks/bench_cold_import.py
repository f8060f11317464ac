"""Cold import of the Lambda handler, as whole fresh processes (min/median/max of N runs).

A Lambda cold start pays for the interpreter plus every module the handler imports before and
during its first invocation. Each figure is the wall time of a new ``python -c`` process; the
floor is the same interpreter running ``pass`` in the same run, so the difference is ours.

    uv run python benchmarks/bench_cold_import.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SCENARIOS: dict[str, str] = {
    "interpreter floor (pass)": "pass",
    "import di_archiver.handler": "import di_archiver.handler",
    # What the first scheduled invocation adds: the engine, the S3/SSM/Secrets/DI adapters and
    # Powertools (the handler builds them on its first call).
    "handler + first-invocation modules": (
        "import di_archiver.handler, di_archiver.domain.engine, di_archiver.adapters.s3_store, "
        "di_archiver.adapters.ssm_checkpoint, di_archiver.adapters.secrets, "
        "di_archiver.adapters.di_client, di_archiver.domain.maintenance, "
        "di_archiver.domain.verify, di_archiver.telemetry; di_archiver.telemetry.powertools()"
    ),
}


def _once(code: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for code in SCENARIOS.values():
        _once(code)  # warm the OS file cache and .pyc files once: Lambda's image is warm too
    print(f"{'scenario':<38}{'min ms':>9}{'median ms':>11}{'max ms':>9}")
    for name, code in SCENARIOS.items():
        times = sorted(_once(code) * 1000 for _ in range(args.runs))
        print(f"{name:<38}{times[0]:>9.0f}{statistics.median(times):>11.0f}{times[-1]:>9.0f}")


if __name__ == "__main__":
    main()
