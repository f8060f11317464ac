"""Run Athena SQL locally with DuckDB over a local or S3 archive.

The same names as in Athena (``events``, ``events_json``, ``events_raw``) are DuckDB views over
the archive's ``.jsonl.gz`` partition files; the view SQL is the Athena view transpiled with
sqlglot, so the local engine exercises the very definitions the CDK stack deploys. Only the
partitions the query's ``dt`` filter (or ``--from``/``--to``) selects are listed, downloaded and
read, and their bytes are counted: that is what Athena would scan.

duckdb and sqlglot are in the ``query`` dependency group only: this module is imported solely by
the ``query`` command (lazily), never by the Lambda runtime.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.athena import Athena
from sqlglot.errors import ParseError
from sqlglot.tokenizer_core import TokenType

from di_archiver.adapters import s3_partitions
from di_archiver.errors import QueryError
from di_archiver.layout import DATE_PARTITION, OBJECT_SUFFIX, ORG_PARTITION, SERVICE_PARTITION
from di_archiver.query import schema
from di_archiver.query.catalog import get_named_query
from di_archiver.services import UNRECOGNISED_SERVICE_PARTITION

ATHENA = "athena"
DUCKDB = "duckdb"
_PARTITION_COLUMNS = (ORG_PARTITION, SERVICE_PARTITION, DATE_PARTITION)


@dataclass(frozen=True)
class DayRange:
    """Inclusive UTC day bounds; ``None`` means unbounded on that side."""

    first: date | None = None
    last: date | None = None

    def contains(self, day: date) -> bool:
        return (self.first is None or day >= self.first) and (self.last is None or day <= self.last)

    def intersect(self, other: DayRange) -> DayRange:
        firsts = [d for d in (self.first, other.first) if d is not None]
        lasts = [d for d in (self.last, other.last) if d is not None]
        return DayRange(max(firsts) if firsts else None, min(lasts) if lasts else None)

    def union(self, other: DayRange) -> DayRange:
        first = None if self.first is None or other.first is None else min(self.first, other.first)
        last = None if self.last is None or other.last is None else max(self.last, other.last)
        return DayRange(first, last)


EMPTY_RANGE = DayRange(date.max, date.min)


@dataclass(frozen=True)
class PartitionFile:
    path: Path
    org: str
    svc: str
    day: date
    size: int


@dataclass
class QueryResult:
    """Rows plus what was read: the files and bytes Athena would scan for the same query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    day_range: DayRange
    files_read: int
    bytes_read: int
    services_seen: set[str] = field(default_factory=set)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# --- SQL analysis -------------------------------------------------------------------------------


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bind_parameters(sql: str, params: Sequence[str]) -> str:
    """Replace Athena's positional ``?`` placeholders with string literals, in text order."""
    tokens = [t for t in Athena().tokenize(sql) if t.token_type == TokenType.PLACEHOLDER]
    if len(tokens) != len(params):
        raise QueryError(f"the query has {len(tokens)} '?' parameters but {len(params)} given")
    out, cursor = [], 0
    for token, value in zip(tokens, params, strict=True):
        out.append(sql[cursor : token.start])
        out.append(_sql_literal(value))
        cursor = token.end + 1
    out.append(sql[cursor:])
    return "".join(out)


def parse_athena(sql: str) -> Any:
    """Parse one Athena (Trino) statement; a QueryError explains what sqlglot could not read."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=ATHENA) if s is not None]
    except ParseError as exc:
        raise QueryError(f"cannot parse the query as Athena SQL: {_plain_text(exc)}") from exc
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement (got {len(statements)})")
    return statements[0]


def _literal_day(node: Any) -> date | None:
    if isinstance(node, exp.Cast):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            return date.fromisoformat(node.this)
        except ValueError:
            return None
    return None


def _is_dt(node: Any) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == DATE_PARTITION


def _conjuncts(node: Any) -> Iterator[Any]:
    if isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def _predicate_range(node: Any) -> DayRange | None:
    """The days a single ``dt`` predicate admits, or None when it does not constrain ``dt``."""
    if isinstance(node, exp.Between) and _is_dt(node.this):
        low, high = _literal_day(node.args.get("low")), _literal_day(node.args.get("high"))
        if low and high:
            return DayRange(low, high)
    if isinstance(node, exp.In) and _is_dt(node.this) and node.expressions:
        days = [_literal_day(e) for e in node.expressions]
        if all(days):
            concrete = [d for d in days if d is not None]
            return DayRange(min(concrete), max(concrete))
    comparisons: dict[type[exp.Binary], Callable[[date], DayRange]] = {
        exp.EQ: lambda d: DayRange(d, d),
        exp.GTE: lambda d: DayRange(d, None),
        exp.GT: lambda d: DayRange(d + timedelta(days=1), None),
        exp.LTE: lambda d: DayRange(None, d),
        exp.LT: lambda d: DayRange(None, d - timedelta(days=1)),
    }
    mirrored: dict[type[exp.Binary], type[exp.Binary]] = {
        exp.GTE: exp.LTE,
        exp.GT: exp.LT,
        exp.LTE: exp.GTE,
        exp.LT: exp.GT,
        exp.EQ: exp.EQ,
    }
    for kind, make in comparisons.items():
        if isinstance(node, exp.Binary) and isinstance(node, kind):
            left, right = node.left, node.right
            if _is_dt(left) and (day := _literal_day(right)):
                return make(day)
            if _is_dt(right) and (day := _literal_day(left)):
                return comparisons[mirrored[kind]](day)
    return None


def day_range_of(statement: Any) -> DayRange:
    """The UTC days a statement can read, from the ``dt`` filters of every SELECT over a table.

    Conservative: only predicates ANDed at the top of a WHERE count; a SELECT over an archive
    table without such a filter makes the range unbounded (as Athena would scan everything).
    """
    archive_tables = {name.lower() for name in schema.TABLES}
    result: DayRange | None = None
    for select in statement.find_all(exp.Select):
        reads_archive = any(
            t.name.lower() in archive_tables
            for t in select.find_all(exp.Table)
            if t.find_ancestor(exp.Select) is select
        )
        if not reads_archive:
            continue
        selected = DayRange()
        where = select.args.get("where")
        if where is not None:
            for predicate in _conjuncts(where.this):
                found = _predicate_range(predicate)
                if found is not None:
                    selected = selected.intersect(found)
        result = selected if result is None else result.union(selected)
    return result if result is not None else EMPTY_RANGE


def to_duckdb(statement: Any) -> str:
    """Transpile to DuckDB, dropping database qualifiers (``di_archive.events`` -> ``events``)."""
    statement = statement.copy()
    for table in statement.find_all(exp.Table):
        if table.name.lower() in schema.TABLES:
            table.set("db", None)
            table.set("catalog", None)
    sql: str = statement.sql(dialect=DUCKDB)
    return sql


# --- archive discovery --------------------------------------------------------------------------


def _partition_value(segment: str, name: str) -> str | None:
    prefix = f"{name}="
    return segment[len(prefix) :] if segment.startswith(prefix) else None


def local_partition_files(root: Path, days: DayRange) -> list[PartitionFile]:
    """Archive objects under ``root`` (any prefix depth) whose ``dt`` lies in ``days``."""
    if not root.is_dir():
        raise QueryError(f"archive directory {root} does not exist")
    found: list[PartitionFile] = []
    for day_dir in sorted(
        root.glob(f"**/{ORG_PARTITION}=*/{SERVICE_PARTITION}=*/{DATE_PARTITION}=*")
    ):
        org = _partition_value(day_dir.parent.parent.name, ORG_PARTITION)
        svc = _partition_value(day_dir.parent.name, SERVICE_PARTITION)
        raw_day = _partition_value(day_dir.name, DATE_PARTITION)
        if org is None or svc is None or raw_day is None or not day_dir.is_dir():
            continue
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            continue
        if not days.contains(day):
            continue
        for path in sorted(day_dir.glob(f"*{OBJECT_SUFFIX}")):
            found.append(PartitionFile(path, org, svc, day, path.stat().st_size))
    return found


# --- DuckDB views -------------------------------------------------------------------------------


def _duckdb_list(files: Sequence[PartitionFile]) -> str:
    return "[" + ", ".join(_sql_literal(str(f.path)) for f in files) + "]"


_HIVE_TYPES = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in _PARTITION_COLUMNS) + "}"


def _typed_view_sql(files: Sequence[PartitionFile]) -> str:
    partitions = ", ".join(f'"{c}"' for c in _PARTITION_COLUMNS)
    if not files:
        nulls = [f'CAST(NULL AS {c.type.duckdb()}) AS "{c.name}"' for c in schema.COLUMNS]
        nulls += [f'CAST(NULL AS VARCHAR) AS "{c}"' for c in _PARTITION_COLUMNS]
        return f"SELECT {', '.join(nulls)} WHERE false"
    columns = ", ".join(
        f"{_sql_literal(c.key)}: {_sql_literal(c.type.duckdb())}" for c in schema.COLUMNS
    )
    select = ", ".join(f'"{c.key}" AS "{c.name}"' for c in schema.COLUMNS)
    # Every interpolated value is a constant of this module or a quoted file path.
    return (
        f"SELECT {select}, {partitions} FROM read_ndjson({_duckdb_list(files)}, "  # noqa: S608
        f"columns={{{columns}}}, hive_partitioning=true, hive_types={_HIVE_TYPES}, "
        "compression='gzip', maximum_object_size=67108864)"
    )


def _raw_view_sql(files: Sequence[PartitionFile]) -> str:
    if not files:
        return (
            "SELECT CAST(NULL AS VARCHAR) AS line, "
            + ", ".join(f'CAST(NULL AS VARCHAR) AS "{c}"' for c in _PARTITION_COLUMNS)
            + " WHERE false"
        )
    partitions = ", ".join(f'"{c}"' for c in _PARTITION_COLUMNS)
    return (
        f"SELECT CAST(json AS VARCHAR) AS line, {partitions} FROM read_ndjson_objects("  # noqa: S608
        f"{_duckdb_list(files)}, hive_partitioning=true, hive_types={_HIVE_TYPES}, "
        "compression='gzip', maximum_object_size=67108864)"
    )


def _connect(files: Sequence[PartitionFile]) -> Any:
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"CREATE VIEW {schema.TYPED_TABLE} AS {_typed_view_sql(files)}")
    connection.execute(f"CREATE VIEW {schema.RAW_TABLE} AS {_raw_view_sql(files)}")
    view = to_duckdb(parse_athena(schema.view_sql()))
    connection.execute(f"CREATE VIEW {schema.VIEW} AS {view}")
    return connection


# --- running ------------------------------------------------------------------------------------


def _parse_day(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise QueryError(f"{what} must be a day like 2026-05-04, got {value!r}") from None


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _plain_text(exc: BaseException) -> str:
    """An error's text without terminal colour codes (sqlglot underlines the culprit with them)."""
    return _ANSI_ESCAPE.sub("", str(exc))


def run_query(
    sql: str,
    *,
    archive: str | Path,
    params: Sequence[str] = (),
    from_day: str | None = None,
    to_day: str | None = None,
    endpoint_url: str | None = None,
    s3_client: Any = None,
    org_ids: Collection[str] | None = None,
) -> QueryResult:
    """Run one Athena SQL statement against a local directory or ``s3://bucket/prefix``.

    ``org_ids`` reads only those organisations' partitions (like a WHERE on ``org``).
    """
    flags = DayRange(_parse_day(from_day, "--from"), _parse_day(to_day, "--to"))
    if flags.first is not None and flags.last is not None and flags.first > flags.last:
        raise QueryError(f"--from {from_day} is after --to {to_day}: no day can match")
    statement = parse_athena(bind_parameters(sql, params) if params else sql)
    days = day_range_of(statement).intersect(flags)
    location = str(archive)
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        client = s3_client if s3_client is not None else s3_partitions.s3_client(endpoint_url)
        with tempfile.TemporaryDirectory(prefix="di-query-") as scratch:
            s3_partitions.download_s3_partitions(
                client, bucket, prefix, days, Path(scratch), org_ids=org_ids
            )
            files = local_partition_files(Path(scratch), days)
            return _execute(statement, files, days)  # before the scratch directory goes
    files = local_partition_files(Path(location), days)
    if org_ids is not None:
        files = [f for f in files if f.org in org_ids]
    return _execute(statement, files, days)


def _execute(statement: Any, files: Sequence[PartitionFile], days: DayRange) -> QueryResult:
    connection = _connect(files)
    try:
        cursor = connection.execute(to_duckdb(statement))
        columns = [d[0] for d in cursor.description or []]
        rows = [tuple(row) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {_plain_text(exc)}") from exc
    finally:
        connection.close()
    return QueryResult(
        columns=columns,
        rows=rows,
        day_range=days,
        files_read=len(files),
        bytes_read=sum(f.size for f in files),
        services_seen={f.svc for f in files},
    )


def run_named(
    name: str,
    values: Mapping[str, str],
    *,
    archive: str | Path,
    endpoint_url: str | None = None,
    s3_client: Any = None,
) -> QueryResult:
    """Run a packaged named query with parameters given by name."""
    query = get_named_query(name)
    return run_query(
        query.sql,
        archive=archive,
        params=query.bind(values),
        endpoint_url=endpoint_url,
        s3_client=s3_client,
    )


def unlisted_services(services: Iterable[str], extra_services: Sequence[str] = ()) -> list[str]:
    """Archived services the Athena typed table's ``svc`` enum would not show."""
    listed = set(schema.projected_services(extra_services))
    return sorted(s for s in services if s not in listed and s != UNRECOGNISED_SERVICE_PARTITION)


# --- rendering ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, default=str))
    return value


def _cell(value: Any) -> str:
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def render(result: QueryResult, fmt: str = "table", *, max_rows: int | None = None) -> str:
    """Render rows as an aligned text table, CSV or JSON Lines (tables may be cut short)."""
    if fmt == "jsonl":
        return "".join(
            json.dumps({k: _plain(v) for k, v in record.items()}, ensure_ascii=False) + "\n"
            for record in result.records()
        )
    cells = [[_cell(v) for v in row] for row in result.rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(cells)
        return buffer.getvalue()
    if fmt != "table":
        raise QueryError(f"unknown format {fmt!r}; use table, csv or jsonl")
    widths = [len(c) for c in result.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    shown = cells if max_rows is None else cells[:max_rows]
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in shown]
    more = f", {len(cells) - len(shown)} not shown" if len(shown) < len(cells) else ""
    lines.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''}{more})")
    return "\n".join(lines) + "\n"


def describe_scan(result: QueryResult) -> str:
    """One line: what was read, i.e. what Athena would bill for."""
    first = result.day_range.first.isoformat() if result.day_range.first else "-inf"
    last = result.day_range.last.isoformat() if result.day_range.last else "+inf"
    return (
        f"scanned {result.files_read} object(s), {result.bytes_read} bytes (dt {first} .. {last})"
    )


DEMO_ROWS = 12


def demo_queries(archive_dir: str | Path) -> str:
    """Two named queries over a local archive, rendered, for ``di-archiver demo``."""
    root = Path(archive_dir)
    days = sorted({f.day for f in local_partition_files(root, DayRange())})
    if not days:
        return "The archive is empty: nothing to query yet.\n"
    window = {"from_day": days[0].isoformat(), "to_day": days[-1].isoformat()}
    parts = []
    for name in ("events_per_service_per_day", "radius_failures_by_user_day"):
        query = get_named_query(name)
        result = run_named(name, window, archive=root)
        rerun = (
            f"all rows: scripts/uv run di-archiver query --named {name} --archive {root} "
            f"--from {window['from_day']} --to {window['to_day']}"
        )
        parts.append(
            f"-- {name}: {query.description}\n{render(result, max_rows=DEMO_ROWS)}"
            f"{describe_scan(result)}\n{rerun}\n"
        )
    return "\n".join(parts)


def demo_report(result: Any) -> list[str]:
    """``di-archiver demo`` report hook: two named queries over ``result.archive_dir``."""
    return demo_queries(result.archive_dir).splitlines()
