"""Field-by-field check of EventBridge Scheduler ``cron(...)`` expressions, before synth.

CloudFormation accepts any string for a schedule and fails only at deploy time (or, for a
nonsense hour, silently never fires), so every field is checked here against EventBridge's
rules: minutes hours day-of-month month day-of-week year, with ``,`` ``-`` ``*`` ``/``, ``?``
in exactly one of the two day fields, and ``L``/``W``/``#`` where EventBridge allows them.
"""

from __future__ import annotations

import re

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
EXAMPLE = "cron(30 2 * * ? *) (minute hour day-of-month month day-of-week year, UTC)"

# name, lowest, highest, names (1-based)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 1, 7, WEEKDAYS),
    ("year", 1970, 2199, ()),
)
_CRON = re.compile(r"^cron\((?P<body>[^()]*)\)$")
# Last day-of-week of the month (5L), the n-th one (MON#2), or the last day of the week (L).
_WEEKDAY_SPECIAL = r"L|[1-7]L|([1-7]|SUN|MON|TUE|WED|THU|FRI|SAT)#[1-5]"


def _value(token: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if token.upper() in names:
        return names.index(token.upper()) + 1
    if token.isdigit() and low <= int(token) <= high:
        return int(token)
    return None


def _field_problem(text: str, index: int) -> str | None:
    name, low, high, names = _FIELDS[index]
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    if text == "?":
        return None if name in {"day-of-month", "day-of-week"} else "'?' is only for the day fields"
    for part in text.split(","):
        if name == "day-of-month" and re.fullmatch(r"L|LW|([1-9]|[12]\d|3[01])W", part):
            continue
        if name == "day-of-week" and (
            part == "L"
            or re.fullmatch(r"[1-7]L|[1-7]#[1-5]|(SUN|MON|TUE|WED|THU|FRI|SAT)#[1-5]", part.upper())
        ):
            continue
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) >= 1):
            return f"step {step!r} in {name} field {text!r} must be a positive number"
        if base == "*":
            continue
        ends = base.split("-")
        if len(ends) > 2 or any(_value(end, low, high, names) is None for end in ends):
            return f"{name} field {text!r} is out of range: use {allowed}, '*', ',', '-' or '/'"
    return None


def cron_problem(expression: str) -> str | None:
    """What is wrong with a ``cron(...)`` expression, or ``None`` when EventBridge accepts it."""
    match = _CRON.match(expression)
    fields = match["body"].split() if match else []
    if len(fields) != 6:
        return f"needs six fields, e.g. {EXAMPLE}"
    for index, text in enumerate(fields):
        problem = _field_problem(text, index)
        if problem:
            return f"{problem}; e.g. {EXAMPLE}"
    if (fields[2] == "?") == (fields[4] == "?"):
        return f"exactly one of day-of-month and day-of-week must be '?'; e.g. {EXAMPLE}"
    return None
