"""The named queries: stored once as ``named/*.sql`` (Athena SQL, ``?`` parameters) and used by
the CDK construct (``CfnNamedQuery``), the local ``di-archiver query --named`` and the tests.

Each file starts with a header::

    -- name: failed_admin_logins
    -- description: one line, shown in the Athena console
    -- params: from_day, to_day

``params`` names the ``?`` placeholders in the order they appear in the text, which is the
order Athena's ``--execution-parameters`` takes them. Every query filters ``dt`` so Athena
reads only the partitions of the requested days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from di_archiver.errors import QueryError

_HEADER = re.compile(r"^--\s*(name|description|params):\s*(.*?)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
DAY_PARAMS = ("from_day", "to_day")


@dataclass(frozen=True)
class NamedQuery:
    """One stored query; ``sql`` is the full file text (header comments included)."""

    name: str
    description: str
    params: tuple[str, ...]
    sql: str

    def bind(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """Positional parameter values for ``values`` keyed by parameter name."""
        takes = ", ".join(dict.fromkeys(self.params))
        # An unknown name first: "needs user" after a typo (--param usr=x) hides the typo.
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise QueryError(
                f"unknown parameter {', '.join(unknown)} for named query {self.name} "
                f"(takes: {takes})"
            )
        missing = [p for p in dict.fromkeys(self.params) if p not in values]
        if missing:
            raise QueryError(
                f"named query {self.name} needs --param for {', '.join(missing)} (takes: {takes})"
            )
        return tuple(values[p] for p in self.params)


def parse_named_query(text: str, *, source: str = "<text>") -> NamedQuery:
    """Read the header of a named-query file; the body is kept verbatim."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if match is None:
            if line.strip() and not line.strip().startswith("--"):
                break
            continue
        header[match[1]] = match[2]
    name = header.get("name", "")
    if not _NAME.match(name) or not header.get("description"):
        raise QueryError(f"{source}: header needs '-- name:' (snake_case) and '-- description:'")
    params = tuple(p.strip() for p in header.get("params", "").split(",") if p.strip())
    return NamedQuery(name=name, description=header["description"], params=params, sql=text)


@cache
def named_queries() -> dict[str, NamedQuery]:
    """Every packaged named query by name (read once per process)."""
    found: dict[str, NamedQuery] = {}
    for entry in sorted(
        resources.files("di_archiver.query").joinpath("named").iterdir(), key=lambda e: e.name
    ):
        if not entry.name.endswith(".sql"):
            continue
        query = parse_named_query(entry.read_text(encoding="utf-8"), source=entry.name)
        if f"{query.name}.sql" != entry.name:
            raise QueryError(f"{entry.name}: file name must be <name>.sql ({query.name}.sql)")
        found[query.name] = query
    return found


def get_named_query(name: str) -> NamedQuery:
    """A named query by name, or a QueryError listing the valid names."""
    try:
        return named_queries()[name]
    except KeyError:
        raise QueryError(
            f"no named query {name!r}; choose one of: {', '.join(named_queries())}"
        ) from None
