"""The CLI's shared surface, without I/O: flags every command takes, words, progress text."""

from __future__ import annotations

import argparse
import io

import pytest

from di_archiver.cli import _load_commands, build_parser, exit_code_of, main
from di_archiver.commands.common import (
    EXIT_FAILURE,
    EXIT_FINDINGS,
    EXIT_USAGE,
    Progress,
    flag_vocabulary,
    human_duration,
)
from di_archiver.errors import CheckpointError, IntegrityError, QueryError, SettingsError

ORG = "64a0c0ffee0000000000a001"
COMMANDS = {module.NAME: module for module in _load_commands()}


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(list(COMMANDS.values()))
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub: argparse.ArgumentParser = action.choices[name]
    return sub


# keygen makes a signing key and concerns no org; every other command addresses orgs.
@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"keygen"}))
def test_every_command_takes_org_id_json_and_verbose(name: str) -> None:
    # Given the full parser
    parser = build_parser(list(COMMANDS.values()))
    # When a command is given --org-id, --json and -v (plus what it requires)
    extra = ["--named", "failed_admin_logins"] if name == "query" else []
    args = parser.parse_args([name, "--org-id", ORG, "--json", "-v", *extra])
    # Then all three are accepted and the org id arrives
    assert args.json is True
    assert args.verbose is True
    org = args.org_ids if hasattr(args, "org_ids") else [args.org_id]
    assert org == [ORG]


@pytest.mark.parametrize("name", ["run", "status", "seal", "reconcile", "verify", "query", "demo"])
def test_every_archive_command_defaults_to_the_same_archive(name: str) -> None:
    # Given each command that reads or writes an archive
    sub = _subparser(name)
    # When its archive option's default is read
    dests = {a.dest: a.default for a in sub._actions}
    default = dests.get("archive", dests.get("dir"))
    # Then it is the one shared default, and its help says so
    assert default == "./di-archive"
    assert "./di-archive" in sub.format_help()


def test_help_shows_defaults_and_exit_codes() -> None:
    # Given run's help
    text = _subparser("run").format_help()
    # Then defaults, the JumpCloud-vs-AWS region distinction and the exit codes are there
    assert "(default: 300)" in text
    assert "Not the AWS region" in " ".join(text.split())
    assert "3  runtime failure" in text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (IntegrityError("x"), EXIT_FINDINGS),
        (SettingsError("x"), EXIT_USAGE),
        (QueryError("x"), EXIT_USAGE),
        (CheckpointError("x"), EXIT_FAILURE),
        (RuntimeError("x"), EXIT_FAILURE),
    ],
)
def test_exit_code_contract(error: Exception, code: int) -> None:
    # Given an error that ends a command / When it is mapped / Then the documented code results
    assert exit_code_of(error) == code


def test_messages_name_flags_not_environment_variables() -> None:
    # Given the engine's message about a checkpoint of another archive
    message = (
        "separate checkpoint location, e.g. DI_ARCHIVER_CHECKPOINT_PARAMETER_PREFIX); to keep "
        "archiving the old one, point DI_ARCHIVER_ARCHIVE_BUCKET / DI_ARCHIVER_ARCHIVE_DIR and "
        "DI_ARCHIVER_ARCHIVE_PREFIX back at it; set DI_ARCHIVER_BUCKET_MINUTES back"
    )
    # When the CLI words it
    worded = flag_vocabulary(message)
    # Then it names the flags, once each, and no variable
    assert "DI_ARCHIVER_" not in worded
    assert "e.g. --checkpoint)" in worded
    assert "point --archive back at it" in worded
    assert "set --bucket-minutes back" in worded


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "n/a"), (0, "0s"), (42, "42s"), (300, "5m"), (9609, "2h 40m"), (5_777_556, "66d 20h")],
)
def test_human_durations(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_progress_line_shows_count_share_and_eta() -> None:
    # Given a progress of 100 buckets on a fake clock, 25 done after 10 s
    now = [0.0]
    progress = Progress(
        "archiving", total=100, unit="buckets", stream=io.StringIO(), clock=lambda: now[0]
    )
    now[0] = 10.0
    progress.advance(25)
    # When its line is rendered
    line = progress.line(10.0)
    # Then it says how far, what share, and the time left at the rate so far
    assert "25/100 buckets" in line
    assert "25%" in line
    assert "ETA 30s" in line


def test_progress_draws_only_on_a_terminal() -> None:
    # Given one progress writing to a non-terminal stream, one forced on
    piped, forced = io.StringIO(), io.StringIO()
    Progress("x", total=2, stream=piped).advance()
    on = Progress("x", total=2, stream=forced, enabled=True)
    on.advance()
    on.close()
    # Then only the terminal one wrote, and it erased its line at the end
    assert piped.getvalue() == ""
    assert forced.getvalue().startswith("\rx [")
    assert forced.getvalue().endswith("\r")


def test_keygen_takes_json_and_verbose() -> None:
    # Given the full parser
    parser = build_parser(list(COMMANDS.values()))
    # When keygen is given --json and -v
    args = parser.parse_args(["keygen", "--out", "k.pem", "--json", "-v"])
    # Then both are accepted
    assert args.json is True
    assert args.verbose is True


class NoRegionError(Exception):
    """Stands in for botocore's (the CLI recognises it by name: it may not import botocore)."""


def test_a_missing_aws_region_is_explained_not_dumped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a command whose AWS client finds no region
    def fail(args: argparse.Namespace) -> int:
        raise NoRegionError("You must specify a region.")

    monkeypatch.setattr(COMMANDS["status"], "run", fail)
    # When it runs
    code = main(["status", "--org-id", ORG])
    # Then it is a usage error that says which variable sets the AWS region, and what
    # --jumpcloud-region is instead
    err = capsys.readouterr().err
    assert code == 2
    assert "AWS_REGION" in err
    assert "--jumpcloud-region is JumpCloud's" in err


def test_main_leaves_the_callers_logging_as_it_was(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a caller whose di_archiver logger shows warnings (retries)
    import logging

    package_logger = logging.getLogger("di_archiver")
    monkeypatch.setattr(package_logger, "level", logging.WARNING)
    monkeypatch.setattr(COMMANDS["status"], "run", lambda args: 0)
    # When a command runs through main() (which quiets retries for its own duration)
    assert main(["status", "--org-id", ORG]) == 0
    # Then the caller's level is back afterwards
    assert package_logger.level == logging.WARNING
