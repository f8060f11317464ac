"""Parsing and validating DI query bodies, ``search_term`` matching and ``fields`` projection.

Pure functions: no sockets, no clock reads (callers pass ``now_ns``). Validation answers
follow di-api.md section 7; where the real API is undocumented the choice is stated here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from di_archiver.errors import ArchiverError
from di_archiver.services import ALL_SERVICES, KNOWN_SERVICES
from di_archiver.simulator.config import DEFAULT_LIMIT, MAX_LIMIT
from di_archiver.simulator.events import TEMPLATES, build_entities, render_event
from di_archiver.timestamps import (
    NS_PER_MS,
    TimestampError,
    format_timestamp_ns,
    parse_timestamp_ns,
)

Event = dict[str, Any]
Matcher = Callable[[Event], bool]

# DI does not index these (SPEC "Search"): a term on them never matches.
UNSEARCHABLE = frozenset({"changes", "useragent", "system_timestamp"})
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
CONJUNCTIONS = ("and", "or", "not")


class QueryRejected(ArchiverError):
    """The request cannot be answered; ``status`` and ``message`` form the HTTP reply."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A validated ``/events``-family request body."""

    services: frozenset[str] | None  # None means every service
    start_ns: int
    end_ns: int | None
    limit: int
    sort: str
    search_after: tuple[int, str] | None
    matcher: Matcher | None
    fields: tuple[str, ...] | None
    q: str | None
    exact_match: str | None
    skip: int
    raw: Mapping[str, Any]

    @property
    def start_ms(self) -> int:
        return self.start_ns // NS_PER_MS

    @property
    def end_ms(self) -> int | None:
        return None if self.end_ns is None else self.end_ns // NS_PER_MS


def _seconds(ns: int) -> str:
    # EL-17209 shows the bounds at whole seconds: "... 2026-01-26T09:13:52Z > ...".
    return format_timestamp_ns(ns - ns % 1_000_000_000)


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or 400."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryRejected("Invalid/unknown query JSON body") from exc
    if not isinstance(data, dict):
        raise QueryRejected("Invalid/unknown query JSON body")
    return data


def parse_limit(value: Any) -> int:
    """Effective page size. Nonsense (non-int, <= 0, > 10000) means the default 1000.

    SPEC says nonsensical values get the default; whether values above the maximum are cut
    to 10000 instead is unknown, so the simulator takes the stricter reading.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        return DEFAULT_LIMIT
    return limit if 0 < limit <= MAX_LIMIT else DEFAULT_LIMIT


def parse_sort(value: Any) -> str:
    """``ASC`` or ``DESC``, case-insensitive; anything else silently means ``ASC``."""
    if isinstance(value, str) and value.strip().upper() == "DESC":
        return "DESC"
    return "ASC"


def parse_search_after(value: Any) -> tuple[int, str] | None:
    """``[<epoch ms number or numeric string>, "<doc id>"]`` or 400."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        raise QueryRejected('search_after must be [<epoch ms>, "<id>"]')
    ms = value[0]
    try:
        if isinstance(ms, bool):
            raise ValueError(ms)
        if isinstance(ms, float):
            if not ms.is_integer():
                raise ValueError(ms)
            ms = int(ms)
        return int(ms), value[1]
    except (TypeError, ValueError) as exc:
        raise QueryRejected('search_after must be [<epoch ms>, "<id>"]') from exc


def _parse_time(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise QueryRejected(f"invalid {name}: expected an RFC3339 date-time string")
    try:
        return parse_timestamp_ns(value.strip())
    except TimestampError as exc:
        raise QueryRejected(f"invalid {name} {value!r}: not an RFC3339 date-time") from exc


def parse_services(value: Any) -> frozenset[str] | None:
    """The requested services; ``None`` for ``all``. Missing or unknown values give 400."""
    if value is None or value == []:
        raise QueryRejected("service is required")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryRejected("Invalid/unknown query JSON body: service must be a list of strings")
    valid = (ALL_SERVICES, *KNOWN_SERVICES)
    for name in value:
        if name not in valid:
            raise QueryRejected(f"unknown service {name!r}; valid services are: {', '.join(valid)}")
    if ALL_SERVICES in value:
        return None
    return frozenset(value)


def parse_event_query(
    data: Mapping[str, Any],
    *,
    now_ns: int,
    max_search_terms: int = 64,
) -> EventQuery:
    """Validate a query body against the simulated clock."""
    services = parse_services(data.get("service"))
    if data.get("start_time") is None:
        raise QueryRejected("start_time is required")
    start_ns = _parse_time(data, "start_time")
    end_ns = _parse_time(data, "end_time")
    assert start_ns is not None
    if start_ns > now_ns:
        raise QueryRejected(f"Start Time is in the future {_seconds(start_ns)}")
    if end_ns is not None and start_ns > end_ns:
        raise QueryRejected(
            f"Start Time not after End Time {_seconds(start_ns)} > {_seconds(end_ns)}"
        )
    matcher = None
    if data.get("search_term") is not None:
        matcher = compile_search_term(data["search_term"], max_terms=max_search_terms)
    fields = parse_fields(data["fields"]) if "fields" in data else None
    skip = data.get("skip", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        skip = 0
    q = data.get("q") if isinstance(data.get("q"), str) and data.get("q") else None
    exact = data.get("exact_match")
    exact = exact if isinstance(exact, str) and exact else None
    return EventQuery(
        services=services,
        start_ns=start_ns,
        end_ns=end_ns,
        limit=parse_limit(data.get("limit")),
        sort=parse_sort(data.get("sort")),
        search_after=parse_search_after(data.get("search_after")),
        matcher=matcher,
        fields=fields,
        q=q.lower() if q else None,
        exact_match=exact,
        skip=skip,
        raw=data,
    )


# --- search_term ------------------------------------------------------------------------------


def compile_search_term(term: Any, *, max_terms: int = 64) -> Matcher:
    """A predicate for a ``search_term`` object; 400 on a bad shape, 500 when too complex."""
    counter = [0]
    if not isinstance(term, dict) or len(term) != 1 or next(iter(term)) not in CONJUNCTIONS:
        raise QueryRejected("search_term must hold exactly one of: and, or, not")
    matcher = _compile_conjunction(term, counter)
    if counter[0] > max_terms:
        raise QueryRejected("Technical difficulties processing your request", status=500)
    return matcher


def _compile_conjunction(term: dict[str, Any], counter: list[int]) -> Matcher:
    op, items = next(iter(term.items()))
    if not isinstance(items, list) or not items:
        raise QueryRejected(f"search_term {op!r} needs a non-empty list")
    parts = [_compile_item(item, counter) for item in items]
    if op == "and":
        return lambda e: all(p(e) for p in parts)
    if op == "or":
        return lambda e: any(p(e) for p in parts)
    return lambda e: not any(p(e) for p in parts)


def _compile_item(item: Any, counter: list[int]) -> Matcher:
    if not isinstance(item, dict) or not item:
        raise QueryRejected("search_term items must be objects")
    if len(item) == 1 and next(iter(item)) in CONJUNCTIONS:
        return _compile_conjunction(item, counter)
    leaves = []
    for path, wanted in item.items():
        counter[0] += 1
        leaves.append(_compile_leaf(path, wanted))
    return lambda e: all(leaf(e) for leaf in leaves)


def _norm(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _compile_leaf(path: str, wanted: Any) -> Matcher:
    parts = tuple(path.split("."))
    values = wanted if isinstance(wanted, list) else [wanted]
    targets = frozenset(v for v in (_norm(x) for x in values) if v is not None)
    if parts[0] in UNSEARCHABLE or not targets:
        return lambda e: False

    def leaf(event: Event) -> bool:
        return any(_norm(v) in targets for v in values_at(event, parts))

    return leaf


def values_at(obj: Any, parts: tuple[str, ...]) -> Iterable[Any]:
    """Every value at a dot path, descending into lists of objects (as Elasticsearch does)."""
    if not parts:
        if isinstance(obj, list):
            yield from obj
        else:
            yield obj
        return
    if isinstance(obj, list):
        for item in obj:
            yield from values_at(item, parts)
    elif isinstance(obj, dict) and parts[0] in obj:
        yield from values_at(obj[parts[0]], parts[1:])


# --- fields projection ------------------------------------------------------------------------


def parse_fields(value: Any) -> tuple[str, ...]:
    """Requested projection; 400 when empty or when none of the fields is known."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryRejected("fields must be a list of field names")
    if not value:
        raise QueryRejected("fields must not be empty")
    known = known_field_paths()
    if not any(f in known for f in value):
        raise QueryRejected(f"no known field in fields: {', '.join(value)}")
    return tuple(value)


@lru_cache(maxsize=1)
def known_field_paths() -> frozenset[str]:
    """Every dot path the simulator's events can carry (from a fixed sample of renders)."""
    ents = build_entities(0, "000000000000000000000000", users=8, systems=8)
    paths: set[str] = set()
    for service in TEMPLATES:
        for i in range(80):
            _collect_paths(render_event(0, ents, i, 1_700_000_000_000_000_000, service), "", paths)
    return frozenset(paths)


def _collect_paths(obj: Any, prefix: str, out: set[str]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _collect_paths(item, prefix, out)
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        path = f"{prefix}{key}"
        out.add(path)
        _collect_paths(value, f"{path}.", out)


def projection_tree(fields: Iterable[str]) -> dict[str, Any]:
    """Nested dict of requested paths; ``None`` marks "keep the whole value"."""
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        parts = path.split(".")
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                node[part] = None
            else:
                child = node.get(part, {})
                if child is None:
                    break  # a whole ancestor is already kept
                node[part] = child
                node = child
    return tree


def project(obj: Any, tree: Mapping[str, Any]) -> Any:
    """Keep only the paths in ``tree`` (source filtering)."""
    if isinstance(obj, list):
        return [project(item, tree) for item in obj if isinstance(item, dict)]
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key not in obj:
            continue
        value = obj[key]
        if sub is None:
            out[key] = value
        elif isinstance(value, dict | list):
            projected = project(value, sub)
            if projected:
                out[key] = projected
    return out
