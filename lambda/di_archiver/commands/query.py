"""``di-archiver query``: run Athena SQL (or a named query) locally with DuckDB."""

from __future__ import annotations

import argparse
import sys

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
    parser.add_argument(
        "--archive", default="archive", help="archive directory or s3://bucket/prefix"
    )
    parser.add_argument("--endpoint-url", help="S3 endpoint (e.g. a local moto server)")
    parser.add_argument("--from", dest="from_day", help="read no partition before this day")
    parser.add_argument("--to", dest="to_day", help="read no partition after this day")
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
    # duckdb/sqlglot are local-only dependencies: import them only when the command runs.
    from di_archiver.query import catalog, local  # noqa: PLC0415

    if args.list:
        for query in catalog.named_queries().values():
            print(f"{query.name}({', '.join(query.params)}): {query.description}")
        return 0
    if bool(args.sql) == bool(args.named):
        raise QueryError("give either SQL or --named NAME (see --list)")
    if args.named:
        values = _params(args.param)
        # --from/--to double as the day parameters every named query takes.
        for flag, param in ((args.from_day, "from_day"), (args.to_day, "to_day")):
            if flag is not None:
                values.setdefault(param, flag)
        query = catalog.get_named_query(args.named)
        result = local.run_query(
            query.sql,
            archive=args.archive,
            params=query.bind(values),
            from_day=args.from_day,
            to_day=args.to_day,
            endpoint_url=args.endpoint_url,
        )
    else:
        result = local.run_query(
            args.sql,
            archive=args.archive,
            params=(),
            from_day=args.from_day,
            to_day=args.to_day,
            endpoint_url=args.endpoint_url,
        )
    sys.stdout.write(local.render(result, args.format))
    print(local.describe_scan(result), file=sys.stderr)
    for service in local.unlisted_services(result.services_seen):
        print(
            f"warning: svc={service} is archived but not in the Athena table's svc projection; "
            f"in Athena query events_raw WHERE svc = '{service}', or add it to the "
            "extraServices context and redeploy",
            file=sys.stderr,
        )
    return 0
