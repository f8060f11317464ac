"""``di-archiver reconcile``: seal, then compare sealed days with DI's counts and repair them.

This is the same pass as the Lambda's daily ``{"mode": "maintain"}``.
"""

from __future__ import annotations

import argparse

from di_archiver.commands.seal import add_source_arguments, execute

NAME = "reconcile"
HELP = "Seal closed days, then re-read and re-seal days where DI counts more events."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``reconcile``'s arguments (those of ``run`` that apply)."""
    add_source_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Seal and reconcile each org; exit 1 when an org failed."""
    return execute(args, reconcile=True, offline=False)
