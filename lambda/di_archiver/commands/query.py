"""``di-archiver query``: run Athena SQL (or a named query) locally with DuckDB."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from di_archiver.commands.common import EXIT_OK
from di_archiver.commands.run import add_archive_argument, add_org_arguments
from di_archiver.errors import QueryError

NAME = "query"
HELP = "Query a local or S3 archive with the same SQL, tables and named queries as Athena."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", help="Athena SQL (tables: events, events_raw, ...)")
    parser.add_argument("--named", metavar="NAME", help="run a packaged named query instead")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="named-query parameter (repeat), e.g. --param from_day=2026-04-01",
    )
    parser.add_argument("--list", action="store_true", help="list the named queries and exit")
    add_archive_argument(parser)
    add_org_arguments(parser, required=False)
    parser.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (an emulator)")
    parser.add_argument(
        "--from", dest="from_day", metavar="YYYY-MM-DD", help="read no partition before this day"
    )
    parser.add_argument(
        "--to", dest="to_day", metavar="YYYY-MM-DD", help="read no partition after this day"
    )
    parser.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")


def _params(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise QueryError(f"--param takes K=V, got {pair!r}")
        values[key.strip()] = value
    return values


def run(args: argparse.Namespace) -> int:
    """Plan, read only the partitions the dt filter needs, run, print."""
    # duckdb/sqlglot are in the optional query group: imported only when this command runs.
    from di_archiver.query import catalog, local  # noqa: PLC0415

    if args.list:
        queries = list(catalog.named_queries().values())
        if getattr(args, "json", False):
            listing = [
                {"name": q.name, "params": list(q.params), "description": q.description}
                for q in queries
            ]
            print(json.dumps({"command": NAME, "named_queries": listing}, indent=2))
        for query in [] if getattr(args, "json", False) else queries:
            print(f"{query.name}({', '.join(query.params)}): {query.description}")
        return EXIT_OK
    if bool(args.sql) == bool(args.named):
        raise QueryError("give either SQL or --named NAME (see --list)")
    sql: str = args.sql
    params: tuple[str, ...] = ()
    if args.named:
        values = _params(args.param)
        query = catalog.get_named_query(args.named)
        # --from/--to double as the day parameters every named query takes.
        for flag, param in ((args.from_day, "from_day"), (args.to_day, "to_day")):
            if flag is not None and param in query.params:
                values.setdefault(param, flag)
        sql, params = query.sql, query.bind(values)
    elif args.param:
        raise QueryError("--param is for --named queries; put values into the SQL itself")
    result = local.run_query(
        sql,
        archive=args.archive,
        params=params,
        from_day=args.from_day,
        to_day=args.to_day,
        endpoint_url=args.endpoint_url,
        org_ids=getattr(args, "org_ids", None),
    )
    warnings = [
        f"warning: svc={service} is archived but not in the Athena table's svc projection; "
        f"in Athena query events_raw WHERE svc = '{service}', or add it to the "
        "extraServices context and redeploy"
        for service in local.unlisted_services(result.services_seen)
    ]
    if getattr(args, "json", False):
        document: dict[str, Any] = {
            "command": NAME,
            "columns": result.columns,
            "rows": json.loads("[" + ",".join(local.render(result, "jsonl").splitlines()) + "]"),
            "scan": local.describe_scan(result),
            "warnings": warnings,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EXIT_OK
    sys.stdout.write(local.render(result, args.format))
    print(local.describe_scan(result), file=sys.stderr)
    for warning in warnings:
        print(warning, file=sys.stderr)
    return EXIT_OK
