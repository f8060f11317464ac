"""The ``di-archiver`` command line: a thin shell over the domain, like the Lambda handler.

Each subcommand lives in its own module exposing ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``; modules are imported only when the CLI starts, never at package import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from di_archiver import __version__
from di_archiver.errors import ArchiverError

COMMAND_MODULES: tuple[str, ...] = (
    "di_archiver.simulator.command",
    "di_archiver.commands.query",
    "di_archiver.commands.demo",
    "di_archiver.commands.run",
    "di_archiver.commands.status",
    "di_archiver.commands.seal",
    "di_archiver.commands.reconcile",
    "di_archiver.commands.verify",
)


def _load_commands() -> list[ModuleType]:
    return [importlib.import_module(name) for name in COMMAND_MODULES]


def build_parser(commands: Sequence[ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="di-archiver",
        description="Archive JumpCloud Directory Insights events to S3 (or a local directory).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_load_commands())
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except ArchiverError as exc:
        print(f"di-archiver {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
