"""The CLI commands through ``main([...])``: demo end to end, run/status on a local archive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from di_archiver.cli import main
from di_archiver.commands import demo
from di_archiver.simulator import Simulator, SimulatorConfig
from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, OrgSpec


def test_demo_archives_everything_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an empty directory and one report hook (as the query feature would add)
    target = tmp_path / "demo-archive"
    monkeypatch.setattr(demo, "REPORT_HOOKS", [f"{__name__}:_hook"])
    # When the demo runs (smaller than the default to keep the suite fast)
    code = main(["demo", "--dir", str(target), "--events", "4000", "--days", "1.5"])
    # Then it passes its exactly-once check, prints the report and the hook's lines
    out = capsys.readouterr().out
    assert code == 0, out
    assert "exactly-once check PASS" in out
    assert "0 missing, 0 extra, 0 duplicated" in out
    assert "verify             PASS: 0 findings" in out
    assert "bytes/event" in out
    # And closed days were sealed into one object per service and day, with manifests
    assert any(target.rglob("day.jsonl.gz"))
    assert any(target.rglob("_manifests/*/*.json"))
    assert "hook saw" in out
    assert any(target.rglob("*.jsonl.gz"))


def _hook(result: demo.DemoResult) -> list[str]:
    return [f"hook saw {result.archived_lines} events"]


def test_demo_exit_code_is_one_when_the_check_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a demo whose archive misses one event (the run itself is replaced: it is slow)
    failing = demo.DemoResult(archive_dir=tmp_path, prefix="di", org_ids=(DEMO_ORG_ID,))
    failing.expected_lines, failing.archived_lines, failing.missing = 10, 9, 1
    monkeypatch.setattr(demo, "run_demo", lambda *args, **kwargs: failing)
    # When the demo command runs
    code = main(["demo", "--dir", str(tmp_path / "d")])
    # Then the report says FAIL and the exit code says so
    assert code == 1
    assert "exactly-once check FAIL" in capsys.readouterr().out


def test_demo_exit_code_is_one_when_verify_finds_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a demo whose events are all there once but whose verification found a problem
    flawed = demo.DemoResult(archive_dir=tmp_path, prefix="di", org_ids=(DEMO_ORG_ID,))
    flawed.expected_lines = flawed.archived_lines = 10
    flawed.verify_findings = 1
    monkeypatch.setattr(demo, "run_demo", lambda *args, **kwargs: flawed)
    # When the demo command runs
    code = main(["demo", "--dir", str(tmp_path / "d")])
    # Then exactly-once passes, verify fails, and so does the exit code
    out = capsys.readouterr().out
    assert code == 1
    assert "exactly-once check PASS" in out
    assert "verify             FAIL" in out


def test_demo_rejects_bad_fault_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given / When a fault rate the simulator cannot honour
    code = main(["demo", "--dir", str(tmp_path / "d"), "--fault-rate", "0.5"])
    # Then it exits 2 with a clear message, creating nothing
    assert code == 2
    assert "--fault-rate" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    sim = Simulator(SimulatorConfig.quiet(orgs=(OrgSpec(event_count=800),), span_seconds=43_200.0))
    with sim.serve(port=0) as server:
        yield server.base_url


def test_run_then_status_on_a_local_archive(
    tmp_path: Path,
    simulator: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the API key in an env var named by --api-key-env
    monkeypatch.setenv("MY_DI_KEY", DEMO_API_KEY)
    archive = tmp_path / "archive"
    # When run and status execute
    run_code = main(
        [
            "run",
            "--org-id",
            DEMO_ORG_ID,
            "--archive",
            str(archive),
            "--base-url",
            simulator,
            "--api-key-env",
            "MY_DI_KEY",
            "--lookback-days",
            "1",
            "--bucket-minutes",
            "30",
            "--concurrency",
            "3",
            "--rate-limit",
            "500",
        ]
    )
    status_code = main(
        ["status", "--org-id", DEMO_ORG_ID, "--archive", str(archive), "--bucket-minutes", "30"]
    )
    # Then objects and the checkpoint file exist and both commands report the org
    out = capsys.readouterr().out
    assert (run_code, status_code) == (0, 0)
    assert any(archive.rglob("*.jsonl.gz"))
    assert (archive / "checkpoints.json").exists()
    assert out.count(f"org {DEMO_ORG_ID}:") == 2
    assert "buckets of 30 min" in out
    assert DEMO_API_KEY not in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["run", "--org-id", "nope", "--archive", "x", "--base-url", "http://127.0.0.1:9"],
            "--org-id 'nope'",
        ),
        (
            [
                "run",
                "--org-id",
                DEMO_ORG_ID,
                "--archive",
                "x",
                "--base-url",
                "http://127.0.0.1:9",
                "--bucket-minutes",
                "7",
            ],
            "must divide 1440",
        ),
        (
            [
                "run",
                "--org-id",
                DEMO_ORG_ID,
                "--archive",
                "x",
                "--services",
                "saml",
                "--base-url",
                "http://127.0.0.1:9",
            ],
            "unknown service",
        ),
        (
            [
                "run",
                "--org-id",
                DEMO_ORG_ID,
                "--archive",
                "s3://",
                "--base-url",
                "http://127.0.0.1:9",
            ],
            "needs a bucket",
        ),
        (
            [
                "run",
                "--org-id",
                DEMO_ORG_ID,
                "--archive",
                "x",
                "--base-url",
                "http://127.0.0.1:9",
                "--concurrency",
                "0",
            ],
            "--concurrency",
        ),
    ],
)
def test_run_rejects_bad_arguments_before_any_io(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    fragment: str,
) -> None:
    # Given a credential, a scratch directory and invalid arguments
    monkeypatch.setenv("JUMPCLOUD_API_KEY", DEMO_API_KEY)
    monkeypatch.chdir(tmp_path)
    # When the CLI runs
    code = main(argv)
    # Then it exits 2 with a clear message and creates nothing
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert DEMO_API_KEY not in err
    assert not any(tmp_path.iterdir())


def test_run_reads_concurrency_and_rate_limit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from di_archiver.cli import _load_commands, build_parser
    from di_archiver.commands.run import settings_from_args

    # Given the variables the Lambda uses, and no flags
    args = build_parser(_load_commands()).parse_args(
        ["run", "--org-id", DEMO_ORG_ID, "--archive", "x", "--base-url", "http://127.0.0.1:9"]
    )
    environ = {
        "JUMPCLOUD_API_KEY": DEMO_API_KEY,
        "DI_ARCHIVER_CONCURRENCY": "8",
        "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": "2.5",
    }
    # When settings are built, Then the environment's values apply
    settings, _ = settings_from_args(args, environ=environ)
    assert (settings.concurrency, settings.rate_limit_per_second) == (8, 2.5)
    # And a flag wins over the environment
    args.concurrency = 2
    assert settings_from_args(args, environ=environ)[0].concurrency == 2


def test_run_without_credential_explains_the_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no credential variables at all
    for name in ("JUMPCLOUD_API_KEY", "JUMPCLOUD_CLIENT_ID", "JUMPCLOUD_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    # When / Then the CLI names the variables and --secret-id
    code = main(["run", "--org-id", DEMO_ORG_ID, "--archive", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2
    assert "JUMPCLOUD_API_KEY" in err
    assert "--secret-id" in err
