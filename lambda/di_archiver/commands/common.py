"""What every command shares: exit codes, --json/-v, the default archive, progress, durations.

Exit codes (one contract for every command, documented in the README):
    0  done, nothing wrong
    1  done, and it found something wrong (verify findings, a failed demo check, an org that
       failed while the others were archived)
    2  usage: a flag or value the command cannot accept (nothing was written)
    3  runtime failure: DI, AWS or the archive failed; run again after fixing the cause
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from di_archiver.settings import ENV_PREFIX

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3

DEFAULT_ARCHIVE = "./di-archive"

# How the CLI spells each setting: an error raised below the CLI names the environment
# variable (the Lambda's vocabulary); the user typed a flag, so the message names the flag.
SETTING_FLAGS: Mapping[str, str] = {
    "org_ids": "--org-id",
    "archive_bucket": "--archive",
    "archive_dir": "--archive",
    "archive_prefix": "--archive",
    "checkpoint_parameter_prefix": "--checkpoint",
    "checkpoint_file": "--checkpoint",
    "bucket_minutes": "--bucket-minutes",
    "lag_seconds": "--lag",
    "settle_seconds": "--settle",
    "lookback_days": "--lookback-days",
    "services": "--services",
    "region": "--jumpcloud-region",
    "base_url": "--base-url",
    "token_url": "--token-url",
    "secret_id": "--secret-id",
    "auth_kind": "--auth-kind",
    "kms_key_id": "--kms-key-id",
    "concurrency": "--concurrency",
    "rate_limit_per_second": "--rate-limit",
    "object_lock_mode": "--object-lock-mode",
    "object_lock_days": "--object-lock-days",
}


def flag_vocabulary(message: str) -> str:
    """``message`` with every ``DI_ARCHIVER_*`` setting name replaced by its CLI flag."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(0).removeprefix(ENV_PREFIX).lower()
        return SETTING_FLAGS.get(name, match.group(0))

    translated = re.sub(rf"{ENV_PREFIX}[A-Z_]+", replace, message)
    # "--archive / --archive and --archive" (bucket, dir, prefix) is one flag on the CLI.
    return re.sub(r"(--[a-z-]+)(?:(?: /|,| and| or) \1\b)+", r"\1", translated)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``-v`` (every command has both)."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout instead of text (progress and logs stay off)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every retried API call and warning as it happens (default: a summary at the end)",
    )


def emit(args: argparse.Namespace, document: Mapping[str, Any], lines: Iterable[str]) -> None:
    """Print ``document`` as JSON with ``--json``, else the human ``lines``."""
    if getattr(args, "json", False):
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
    else:
        for line in lines:
            print(line)


def human_duration(seconds: float | None) -> str:
    """``9609`` -> ``2h 40m``; ``300`` -> ``5m``; ``42`` -> ``42s``; ``None`` -> ``n/a``."""
    if seconds is None:
        return "n/a"
    total = round(max(0.0, seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


class Progress:
    """One self-updating line on a terminal: done/total, rate and ETA; silent when piped.

    Writes only when ``stream`` is a TTY (and not under ``--json``), at most ten times a second,
    and erases itself on :meth:`close` so the command's result lines follow cleanly.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "",
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self._clock = clock
        self._began = clock()
        self._drawn = 0.0
        self._width = 0

    def advance(self, amount: int = 1, *, note: str = "") -> None:
        self.done += amount
        now = self._clock()
        if self.enabled and (now - self._drawn >= 0.1 or self.done == self.total):
            self._drawn = now
            self._draw(self.line(now, note))

    def line(self, now: float, note: str = "") -> str:
        """The progress text at ``now`` (public so tests can read it without a terminal)."""
        elapsed = max(now - self._began, 1e-9)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 20)
            left = (self.total - self.done) / rate if rate > 0 else None
            eta = f"ETA {human_duration(left)}" if left is not None else "ETA ?"
            text = (
                f"{self.label} [{bar:<20}] {self.done}/{self.total}{unit} "
                f"{share:4.0%} {eta}, {human_duration(elapsed)} elapsed"
            )
        else:
            text = f"{self.label} {self.done}{unit}, {human_duration(elapsed)} elapsed"
        return f"{text} {note}".rstrip()

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


class CountingPublisher:
    """Counts signed heads and keeps the newest per org (printed as the heads to store)."""

    def __init__(self) -> None:
        self.signed = 0
        self.newest: dict[str, tuple[str, str]] = {}

    def publish(self, head: Mapping[str, Any]) -> None:
        self.signed += 1
        org, day = str(head["org"]), str(head["day"])
        if org not in self.newest or day >= self.newest[org][0]:
            self.newest[org] = (day, str(head["manifest_sha256"]))
