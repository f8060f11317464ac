"""``di-archiver run``/``status`` over real HTTP: moto_server as a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx
import pytest

from di_archiver.archive_format import decode_lines
from di_archiver.cli import main
from di_archiver.raw_events import serialise_event
from di_archiver.simulator import Simulator, SimulatorConfig
from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, OrgSpec
from di_archiver.timestamps import NS_PER_SECOND

BUCKET = "cli-archive"
LAG_S = 300


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Port 0 lets the OS pick a free port; moto prints the URL it bound to on stderr.
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and url is None:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited: {log_path.read_text()}")
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log_path.read_text())
            if match:
                url = match.group(1)
            else:
                time.sleep(0.05)
        assert url, "moto_server did not report its address"
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(SimulatorConfig.quiet(orgs=(OrgSpec(event_count=1500),), span_seconds=43_200.0))
    with sim.serve(port=0) as server:
        yield sim, server.base_url


def test_cli_run_and_status_against_moto_server(
    moto_server: str,
    simulator: tuple[Simulator, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a bucket on moto_server and the simulator's API key in the environment
    sim, base_url = simulator
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("JUMPCLOUD_API_KEY", DEMO_API_KEY)
    started_ns = time.time_ns()
    common = [
        "--org-id",
        DEMO_ORG_ID,
        "--archive",
        f"s3://{BUCKET}/di",
        "--endpoint-url",
        moto_server,
    ]
    # When the CLI runs one pass and then reports status
    code = main(
        [
            "run",
            *common,
            "--base-url",
            base_url,
            "--checkpoint",
            "ssm:/cli/checkpoints",
            "--lookback-days",
            "1",
            "--lag",
            str(LAG_S),
        ]
    )
    status_code = main(["status", *common, "--checkpoint", "ssm:/cli/checkpoints"])
    # Then S3 over HTTP holds every settled event once, SSM holds the checkpoint
    out = capsys.readouterr().out
    assert code == 0
    assert status_code == 0
    lines: list[bytes] = []
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="di/").get("Contents", []):
        assert item["Key"].startswith(f"di/org={DEMO_ORG_ID}/svc=")
        lines.extend(decode_lines(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()))
    head = s3.head_object(Bucket=BUCKET, Key=item["Key"])
    assert head["ServerSideEncryption"] == "AES256"
    settled = sim.visible_events(DEMO_ORG_ID, 0, started_ns - LAG_S * NS_PER_SECOND)
    assert settled
    assert {serialise_event(e) for e in settled} <= set(lines)
    assert len(lines) == len(set(lines))
    ssm = boto3.client("ssm", endpoint_url=moto_server)
    assert ssm.get_parameter(Name=f"/cli/checkpoints/{DEMO_ORG_ID}")["Parameter"]["Value"]
    assert f"org {DEMO_ORG_ID}:" in out
    assert "buckets of 60 min" in out  # status read the SSM checkpoint over HTTP
    assert DEMO_API_KEY not in out
