"""The few conversions the settings and the invocation event need, worded as users know them.

Both models were pydantic models; pydantic's import and schema build were about half of the
handler's cold-start CPU, so they are plain dataclasses now, checked with these. The rules
(lax conversion of strings to numbers, bounds) and their messages are pydantic's, kept so that
docs, tests and what operators already read still hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple


class Problem(NamedTuple):
    """One thing wrong with an input: where (field, item), what, and the value given."""

    loc: tuple[str | int, ...]
    msg: str
    input: Any


class Refused(NamedTuple):
    """A value a converter did not accept, and why."""

    msg: str


def to_int(raw: Any) -> int | Refused:
    """Environment strings, command-line ints and JSON numbers, as pydantic's lax mode took them
    (``" 15 "``, ``"1_000"``, ``"15.0"`` and ``15.0`` are 15 minutes; ``True`` is 1)."""
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return Refused("Input should be a finite number")
        if not raw.is_integer():
            return Refused("Input should be a valid integer, got a number with a fractional part")
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        # ASCII digits only: int() would also take other scripts' digits.
        if re.fullmatch(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0*)?", text, re.ASCII):
            return int(text.partition(".")[0])
        return Refused("Input should be a valid integer, unable to parse string as an integer")
    return Refused("Input should be a valid integer")


def to_float(raw: Any) -> float | Refused:
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str) and raw.isascii():
        try:
            return float(raw)
        except ValueError:
            pass
    if isinstance(raw, str):
        return Refused("Input should be a valid number, unable to parse string as a number")
    return Refused("Input should be a valid number")


def to_str(raw: Any) -> str | Refused:
    return raw if isinstance(raw, str) else Refused("Input should be a valid string")


def to_enum(kind: type[StrEnum]) -> Callable[[Any], Any]:
    """A converter to ``kind`` that takes a member or its exact value."""
    members = [member.value for member in kind]
    listed = ", ".join(repr(m) for m in members[:-1]) + f" or {members[-1]!r}"

    def convert(raw: Any) -> Any:
        if isinstance(raw, kind):
            return raw
        if isinstance(raw, str) and raw in members:
            return kind(raw)
        return Refused(f"Input should be {listed}")

    return convert


def bound_problem(value: float, limits: Mapping[str, Any]) -> str | None:
    """What is out of bounds (``le``, ``ge``, ``gt`` in ``limits``), if anything."""
    # Checked in pydantic's order, so a NaN rate is "less than or equal to 1000", as before.
    if "le" in limits and not value <= limits["le"]:
        return f"Input should be less than or equal to {limits['le']}"
    if "ge" in limits and not value >= limits["ge"]:
        return f"Input should be greater than or equal to {limits['ge']}"
    if "gt" in limits and not value > limits["gt"]:
        return f"Input should be greater than {limits['gt']}"
    return None
