"""The ``di-archiver`` command line: thin adapters over the application layer.

Each subcommand lives in its own module exposing ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Every command takes ``--json`` and ``-v`` and follows one exit-code
contract (``di_archiver.commands.common``): 0 ok, 1 findings, 2 usage, 3 runtime failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from di_archiver import __version__
from di_archiver.commands.common import (
    EXIT_FAILURE,
    EXIT_FINDINGS,
    EXIT_USAGE,
    add_output_arguments,
    flag_vocabulary,
)
from di_archiver.errors import ArchiverError, IntegrityError, QueryError, SettingsError
from di_archiver.redaction import RedactingFormatter, redact

COMMAND_MODULES: tuple[str, ...] = (
    "di_archiver.commands.demo",
    "di_archiver.commands.run",
    "di_archiver.commands.status",
    "di_archiver.commands.seal",
    "di_archiver.commands.reconcile",
    "di_archiver.commands.verify",
    "di_archiver.commands.keygen",
    "di_archiver.commands.query",
    "di_archiver.simulator.command",
)

EXIT_CODES_HELP = """exit codes (every command):
  0  done, nothing wrong
  1  done, and something was found wrong (verify findings, a failed demo check)
  2  usage: a flag or value was not accepted (nothing was written)
  3  runtime failure (DI, AWS, the archive, or one org of several): fix the cause, run again
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (unset and off options say nothing); epilogs keep
    their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default" in text.lower()
            or default in (None, False, argparse.SUPPRESS)
            or default == []
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _load_commands() -> list[ModuleType]:
    return [importlib.import_module(name) for name in COMMAND_MODULES]


def build_parser(commands: Sequence[ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="di-archiver",
        description="Archive JumpCloud Directory Insights events to S3 (or a local directory).",
        epilog=EXIT_CODES_HELP,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog=EXIT_CODES_HELP,
            formatter_class=_HelpFormatter,
        )
        module.add_arguments(sub)
        add_output_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _configure_logging(verbose: bool) -> int:
    """Set the package's log level for one command; returns the level to restore after it."""
    # Retried API faults are expected (throttling); the commands summarise them at the end.
    # -v shows each one as it happens.
    package_logger = logging.getLogger("di_archiver")
    previous = package_logger.level
    if verbose:
        root = logging.getLogger()
        existing = set(root.handlers)
        logging.basicConfig(level=logging.INFO)
        for handler in set(root.handlers) - existing:
            # Library lines (httpx quotes a server's status text) pass through the scrub too.
            handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
        package_logger.setLevel(logging.INFO)
    else:
        package_logger.setLevel(logging.ERROR)
    return previous


def exit_code_of(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    if isinstance(exc, IntegrityError):
        return EXIT_FINDINGS
    if isinstance(exc, SettingsError | QueryError) or _is_no_region(exc):
        return EXIT_USAGE
    return EXIT_FAILURE


def _is_no_region(exc: BaseException) -> bool:
    # botocore's NoRegionError, by name: the CLI does not import botocore to start up.
    return type(exc).__name__ == "NoRegionError"


def _describe(exc: BaseException) -> str:
    if _is_no_region(exc):
        return (
            "no AWS region configured for the S3/SSM/Secrets Manager clients: set AWS_REGION "
            "(or AWS_DEFAULT_REGION, or a profile's region); --jumpcloud-region is JumpCloud's "
            "data centre, not the AWS region"
        )
    if isinstance(exc, ArchiverError):
        return flag_vocabulary(str(exc))
    return redact(f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_load_commands())
    args = parser.parse_args(argv)
    previous_level = _configure_logging(args.verbose)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.verbose and not isinstance(exc, ArchiverError):
            # Scrubbed: a library's exception (or one it chains) may quote the credential.
            print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        code = exit_code_of(exc)
        message = _describe(exc)
        print(f"di-archiver {args.command}: error: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"command": args.command, "error": message, "exit_code": code}))
        return code
    finally:
        # main() also runs inside other programs (and tests): leave their logging as it was.
        logging.getLogger("di_archiver").setLevel(previous_level)


if __name__ == "__main__":
    sys.exit(main())
