"""Cold import of the Lambda handler, as whole fresh processes (min/median/max of N runs).

A Lambda cold start pays for the interpreter plus every module the handler imports before and
during its first invocation. Each figure is the wall time of a new ``python -c`` process; the
floor is the same interpreter running ``pass`` in the same run, so the difference is ours.

    uv run python benchmarks/bench_cold_import.py --runs 15
    uv run python benchmarks/bench_cold_import.py --runs 15 --baseline /path/to/old/lambda

``--baseline`` puts another checkout's ``lambda`` directory first on PYTHONPATH for a second
set of figures, measured interleaved with the first so machine load hits both alike.
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


def _once(code: str, source: str | None = None) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if source is not None:
        env["PYTHONPATH"] = source
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="LAMBDA_DIR",
        help="another checkout's lambda/ (repeat for several)",
    )
    args = parser.parse_args()
    trees: dict[str, str | None] = {"current": None}
    for index, source in enumerate(args.baseline, start=1):
        trees[f"baseline{index}"] = source
    for code in SCENARIOS.values():
        for source in trees.values():
            _once(code, source)  # warm the OS file cache once: Lambda's image is warm too
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for name, code in SCENARIOS.items():
            for tree, source in trees.items():
                times.setdefault((tree, name), []).append(_once(code, source) * 1000)
    print(f"{'tree':<10}{'scenario':<38}{'min ms':>9}{'median ms':>11}{'max ms':>9}")
    for (tree, name), values in times.items():
        values.sort()
        print(
            f"{tree:<10}{name:<38}{values[0]:>9.0f}"
            f"{statistics.median(values):>11.0f}{values[-1]:>9.0f}"
        )


if __name__ == "__main__":
    main()
