"""The CLI's contract end to end: --json for every command, exit codes, progress on a TTY only,
per-org results when one org fails, errors that name the flag and the value."""

from __future__ import annotations

import argparse
import json
import os
import pty
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from di_archiver.cli import _load_commands, build_parser, main
from di_archiver.simulator import Simulator, SimulatorConfig, command
from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, OrgSpec

OTHER_ORG = "64a0c0ffee0000000000b00b"  # not served by the simulator: DI refuses it


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    sim = Simulator(SimulatorConfig.quiet(orgs=(OrgSpec(event_count=600),), span_seconds=43_200.0))
    with sim.serve(port=0) as server:
        yield server.base_url


@pytest.fixture
def archive(tmp_path: Path, simulator: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local archive after one run (the API key in the environment)."""
    monkeypatch.setenv("JUMPCLOUD_API_KEY", DEMO_API_KEY)
    target = tmp_path / "a"
    assert main(_run_args(target, simulator)) == 0
    return target


def _run_args(target: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "run",
        "--org-id",
        DEMO_ORG_ID,
        "--archive",
        str(target),
        "--base-url",
        base_url,
        "--lookback-days",
        "1",
        *extra,
    ]


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    document = json.loads(capsys.readouterr().out)
    assert isinstance(document, dict)
    return document


def test_json_output_parses_for_every_command(
    archive: Path, simulator: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given an archive written by one run
    capsys.readouterr()
    org = ["--org-id", DEMO_ORG_ID]
    where = ["--archive", str(archive)]
    seen: dict[str, dict[str, object]] = {}
    # When every command runs with --json
    assert main([*_run_args(archive, simulator), "--json"]) == 0
    seen["run"] = _json(capsys)
    assert main(["status", *org, *where, "--json"]) == 0
    seen["status"] = _json(capsys)
    assert main(["seal", *org, *where, "--offline", "--json"]) == 0
    seen["seal"] = _json(capsys)
    reconcile = ["reconcile", *org, *where, "--base-url", simulator, "--json"]
    assert main(reconcile) == 0
    seen["reconcile"] = _json(capsys)
    assert main(["verify", *where, *org, "--json"]) == 0
    seen["verify"] = _json(capsys)
    assert main(["query", *where, "--json", "SELECT count(*) AS n FROM events"]) == 0
    seen["query"] = _json(capsys)
    demo_dir = tmp_path / "demo"
    demo = ["demo", "--dir", str(demo_dir), "--events", "1500", "--days", "1", "--json"]
    assert main(demo) == 0
    seen["demo"] = _json(capsys)
    assert main(["keygen", "--out", str(tmp_path / "key.pem"), "--json"]) == 0
    seen["keygen"] = _json(capsys)
    stop = threading.Event()
    stop.set()
    parsed = build_parser([command]).parse_args(["simulate", "--port", "0", "--json"])
    assert command.run(parsed, stop=stop) == 0
    seen["simulate"] = _json(capsys)
    # Then each printed exactly one JSON document naming its command, with its facts
    assert sorted(seen) == sorted(m.NAME for m in _load_commands())
    for name, document in seen.items():
        assert document["command"] == name
    assert seen["run"]["ok"] is True
    assert seen["status"]["orgs"][0]["archived"] is True  # type: ignore[index]
    assert seen["verify"]["ok"] is True
    assert seen["query"]["rows"][0]["n"] > 0  # type: ignore[index]
    assert seen["demo"]["ok"] is True
    assert seen["simulate"]["api_key"] == DEMO_API_KEY


def test_exit_codes_as_documented(
    archive: Path, simulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a sealed archive
    assert main(["seal", "--org-id", DEMO_ORG_ID, "--archive", str(archive), "--offline"]) == 0
    # Then a clean verify is 0, a bad flag value 2, a wrong query parameter 2
    assert main(["verify", "--archive", str(archive)]) == 0
    assert main([*_run_args(archive, simulator), "--lag", "-5"]) == 2
    assert "--lag '-5'" in capsys.readouterr().err
    # And an altered object is a finding (1)
    victim = next(archive.rglob("*.jsonl.gz"))
    victim.write_bytes(victim.read_bytes()[:-3] + b"xyz")
    assert main(["verify", "--archive", str(archive)]) == 1
    # And a checkpoint that belongs to another archive is a runtime failure (3)
    copy = archive.parent / "copy"
    shutil.copytree(archive, copy)
    capsys.readouterr()
    assert main(_run_args(copy, simulator)) == 3
    err = capsys.readouterr().err
    # whose message names the CLI's flags, not the Lambda's environment variables
    assert "--archive" in err
    assert "--checkpoint" in err
    assert "DI_ARCHIVER_" not in err


def test_status_without_an_archive_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a directory with no archive / When status runs on it
    code = main(["status", "--org-id", DEMO_ORG_ID, "--archive", str(tmp_path / "none")])
    # Then it exits 2 naming the flag and the value
    assert code == 2
    assert f"--archive {tmp_path / 'none'}" in capsys.readouterr().err


def test_run_with_one_failing_org_reports_the_others(
    tmp_path: Path,
    simulator: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two orgs, one of which DI refuses for this key
    monkeypatch.setenv("JUMPCLOUD_API_KEY", DEMO_API_KEY)
    args = _run_args(tmp_path / "a", simulator, "--org-id", OTHER_ORG, "--json")
    # When run executes
    code = main(args)
    # Then the exit code is 3, and the report has both orgs: one archived, one failed
    captured = capsys.readouterr()
    assert code == 3
    orgs = {o["org_id"]: o for o in json.loads(captured.out)["orgs"]}
    assert orgs[DEMO_ORG_ID]["ok"] is True
    assert orgs[DEMO_ORG_ID]["events"] > 0
    assert orgs[OTHER_ORG]["ok"] is False
    assert OTHER_ORG in captured.err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--named", "sso_apps_for_user", "--param", "usr=x"], "unknown parameter usr"),
        (
            ["--named", "failed_admin_logins", "--from", "2026-05-04", "--to", "2026-05-01"],
            "is after --to",
        ),
        (["SELECT FROM WHERE"], "cannot parse"),
    ],
)
def test_query_errors_name_what_was_wrong(
    archive: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    # Given an archive / When a query with a mistake runs
    code = main(["query", "--archive", str(archive), *argv])
    # Then it exits 2 with a plain message (no terminal colour codes) naming the mistake
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert "\x1b[" not in err


def _cli_output(argv: list[str], *, tty: bool, env: dict[str, str]) -> str:
    """stderr of the CLI in a child process, attached to a pseudo-terminal or to a pipe."""
    cmd = [sys.executable, "-m", "di_archiver.cli", *argv]
    if not tty:
        done = subprocess.run(
            cmd, check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_appears_on_a_terminal_and_not_in_a_pipe(tmp_path: Path, simulator: str) -> None:
    # Given the CLI in a child process with the credential in its environment
    env = {**os.environ, "JUMPCLOUD_API_KEY": DEMO_API_KEY}
    # When run executes once with stderr on a terminal and once into a pipe
    on_tty = _cli_output(_run_args(tmp_path / "t", simulator), tty=True, env=env)
    piped = _cli_output(_run_args(tmp_path / "p", simulator), tty=False, env=env)
    # Then the terminal saw a progress line with an ETA; the pipe saw neither
    assert "archiving [" in on_tty
    assert "ETA" in on_tty
    assert "archiving [" not in piped
    assert "ETA" not in piped
    assert "\r" not in piped


def test_parser_rejects_unknown_command_with_usage_code() -> None:
    # Given / When an unknown command / Then argparse's usage error is exit code 2
    with pytest.raises(SystemExit) as raised:
        build_parser(_load_commands()).parse_args(["nope"])
    assert raised.value.code == 2
    assert isinstance(build_parser(_load_commands()), argparse.ArgumentParser)
