import argparse
import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from di_archiver.commands import query as query_command
from di_archiver.errors import QueryError
from di_archiver.query import local
from di_archiver.query.local import DayRange, bind_parameters, day_range_of, parse_athena

from . import truth
from .conftest import ORG, extended_events, write_archive

FIRST, LAST = date(2026, 5, 4), date(2026, 5, 5)
WINDOW = {"from_day": FIRST.isoformat(), "to_day": LAST.isoformat()}


def _days(sql: str) -> tuple[str | None, str | None]:
    found = day_range_of(parse_athena(sql))
    return (
        found.first.isoformat() if found.first else None,
        found.last.isoformat() if found.last else None,
    )


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM events WHERE dt = '2026-05-04'", ("2026-05-04", "2026-05-04")),
        ("SELECT * FROM events WHERE dt >= '2026-05-04' AND dt < '2026-05-06'",
         ("2026-05-04", "2026-05-05")),
        ("SELECT * FROM events WHERE '2026-05-04' < dt", ("2026-05-05", None)),
        ("SELECT * FROM events WHERE dt IN ('2026-05-09', '2026-05-04') AND svc = 'sso'",
         ("2026-05-04", "2026-05-09")),
        ("SELECT * FROM di_archive.events WHERE (dt BETWEEN '2026-01-01' AND '2026-03-31')",
         ("2026-01-01", "2026-03-31")),
        # a disjunction cannot be pruned safely: read everything
        ("SELECT * FROM events WHERE dt = '2026-05-04' OR svc = 'sso'", (None, None)),
        ("SELECT * FROM events", (None, None)),
        # two scans: the union of both ranges
        ("SELECT id FROM events WHERE dt = '2026-05-01' UNION ALL "
         "SELECT id FROM events_raw WHERE dt = '2026-05-03'", ("2026-05-01", "2026-05-03")),
    ],
)  # fmt: skip
def test_day_range_is_derived_from_dt_predicates(sql: str, expected: tuple[str, str]) -> None:
    assert _days(sql) == expected


def test_parameters_become_literals_and_cannot_inject_sql() -> None:
    sql = "SELECT * FROM events WHERE dt = ? AND id = ?"
    bound = bind_parameters(sql, ["2026-05-04", "x' OR '1'='1"])
    statement = parse_athena(bound)
    assert "'x'' OR ''1''=''1'" in bound
    assert day_range_of(statement) == DayRange(FIRST, FIRST)
    with pytest.raises(QueryError, match="2 '\\?' parameters but 1"):
        bind_parameters(sql, ["2026-05-04"])


def _run_named(archive: Path, name: str, **extra: str) -> local.QueryResult:
    return local.run_named(name, WINDOW | extra, archive=archive)


def test_named_queries_match_ground_truth_on_a_crafted_archive(archive: Path) -> None:
    # Given an archive holding the sample events plus one crafted case per question
    events = extended_events()
    # Then every named query returns exactly what plain Python computes, and none is empty
    checks: dict[str, tuple[Any, Any]] = {}
    for name in ("failed_admin_logins", "admin_logins_without_mfa", "admins_created",
                 "password_item_reveals"):  # fmt: skip
        got = sorted(r["id"] for r in _run_named(archive, name).records())
        checks[name] = (got, getattr(truth, name)(events, FIRST, LAST))
    admin = "alex.admin@example.test"
    got = sorted(r["id"] for r in _run_named(archive, "events_by_admin", admin=admin).records())
    checks["events_by_admin"] = (got, truth.events_by_admin(events, FIRST, LAST, admin))
    rows = _run_named(archive, "radius_failures_by_user_day").records()
    checks["radius"] = (
        {(r["day"], r["username"]): r["failures"] for r in rows},
        truth.radius_failures_by_user_day(events, FIRST, LAST),
    )
    rows = _run_named(archive, "events_per_service_per_day").records()
    checks["per_day"] = (
        {(r["org"], r["service"], r["day"]): r["events"] for r in rows},
        truth.events_per_service_per_day(events, FIRST, LAST),
    )
    user = "jordan.lee"
    rows = _run_named(archive, "sso_apps_for_user", user="jordan.lee").records()
    checks["sso"] = (
        {r["application"]: r["sign_ins"] for r in rows},
        truth.sso_apps_for_user(events, FIRST, LAST, user),
    )
    rows = _run_named(archive, "user_group_membership_changes", user=user).records()
    checks["groups"] = (
        sorted((r["id"], r["op"], r["group_name"]) for r in rows),
        truth.user_group_membership_changes(events, FIRST, LAST, user),
    )
    for name, (got, expected) in checks.items():
        assert got == expected, name
        assert expected, f"{name}: the fixture should give this query something to find"


def test_day_boundaries_follow_the_utc_partition(archive: Path) -> None:
    # The failed login at 2026-05-03T23:59:59.999999999Z belongs to 2026-05-03 only
    rows = local.run_named(
        "failed_admin_logins", {"from_day": "2026-05-03", "to_day": "2026-05-03"}, archive=archive
    ).records()
    assert [r["id"] for r in rows] == ["70000000000000000000f001"]
    assert str(rows[0]["timestamp"]).startswith("2026-05-03 23:59:59.999")


def test_date_filter_reads_only_the_partitions_of_those_days(archive: Path) -> None:
    # Given the same question with and without a date filter
    everything = local.run_query("SELECT count(*) AS n FROM events", archive=archive)
    one_day = local.run_query(
        "SELECT count(*) AS n FROM events WHERE dt = '2026-05-05'", archive=archive
    )
    # Then the filtered query reads fewer objects and bytes, and just that day's events
    expected_bytes = sum(p.stat().st_size for p in archive.glob("**/dt=2026-05-05/*.jsonl.gz"))
    assert one_day.bytes_read == expected_bytes
    assert 0 < one_day.bytes_read < everything.bytes_read
    assert one_day.rows == [(sum(1 for e in extended_events() if truth.day(e) == "2026-05-05"),)]
    assert everything.rows == [(len(extended_events()),)]


def test_raw_table_returns_each_archived_line_verbatim(archive: Path) -> None:
    # Given the bytes the archive holds for one partition
    lines = set()
    for path in archive.glob("**/svc=ldap/dt=2026-05-04/*.jsonl.gz"):
        lines |= set(gzip.decompress(path.read_bytes()).decode().splitlines())
    # When any field, even one the typed table does not name, is read from the raw table
    result = local.run_query(
        "SELECT line, json_extract_scalar(line, '$.connection_id') AS conn FROM events_raw "
        "WHERE svc = 'ldap' AND dt = '2026-05-04'",
        archive=archive,
    )
    # Then the lines are the archived ones and the field is reachable
    assert {r["line"] for r in result.records()} == lines
    assert all(r["conn"] for r in result.records())


def test_view_types_every_timestamp_precision_and_keeps_the_raw_string(archive: Path) -> None:
    result = local.run_query(
        "SELECT timestamp_raw, \"timestamp\", at_version FROM events WHERE dt = '2026-05-04'",
        archive=archive,
    )
    assert result.rows
    for raw, typed, version in result.rows:
        assert typed is not None
        assert version == "1"
        assert typed.isoformat().startswith(raw[:19])


def test_changes_from_to_hold_any_json_as_text(archive: Path) -> None:
    rows = local.run_query(
        "SELECT changes FROM events WHERE id = '66b1f0a1c0ffee0000000002' AND dt = '2026-05-04'",
        archive=archive,
    ).rows
    changes = {c["field"]: (c["from"], c["to"]) for c in rows[0][0]}
    assert changes["suspended"] == ("false", "true")
    assert json.loads(changes["attributes"][0]) == [{"name": "costCenter", "value": "100"}]


def test_malformed_lines_fail_the_query_instead_of_vanishing(tmp_path: Path) -> None:
    write_archive(tmp_path, extended_events()[:3])
    victim = next(tmp_path.glob("**/*.jsonl.gz"))
    victim.write_bytes(gzip.compress(gzip.decompress(victim.read_bytes()) + b"{not json\n"))
    with pytest.raises(QueryError):
        local.run_query("SELECT count(*) FROM events", archive=tmp_path)


def test_empty_range_gives_empty_typed_results(archive: Path) -> None:
    result = local.run_query("SELECT id, org FROM events WHERE dt = '2019-01-01'", archive=archive)
    assert (result.rows, result.files_read, result.bytes_read) == ([], 0, 0)


def _args(**overrides: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    query_command.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_command_prints_named_query_csv_and_reports_the_scan(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = query_command.run(
        _args(named="radius_failures_by_user_day", archive=str(archive), format="csv",
              from_day="2026-05-05", to_day="2026-05-05")
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert out.splitlines() == ["day,username,failures", "2026-05-05,sam.ortiz,2"]  # two orgs
    assert "scanned" in err
    assert "2026-05-05 .. 2026-05-05" in err


def test_command_warns_about_services_athena_would_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an archive with a service this version does not know
    event = dict(extended_events()[0], service="brand_new_service", id="x1")
    write_archive(tmp_path, [event])
    # When it is queried locally
    query_command.run(_args(sql="SELECT svc, count(*) FROM events GROUP BY svc",
                            archive=str(tmp_path), format="jsonl"))  # fmt: skip
    out, err = capsys.readouterr()
    # Then the rows are shown and the user is told how to see them in Athena
    assert json.loads(out) == {"svc": "brand_new_service", "count_star()": 1}
    assert "svc=brand_new_service" in err
    assert "extraServices" in err


def test_command_rejects_sql_and_named_together(archive: Path) -> None:
    with pytest.raises(QueryError):
        query_command.run(_args(sql="SELECT 1", named="admins_created", archive=str(archive)))


def test_demo_queries_render_two_tables(archive: Path) -> None:
    text = local.demo_queries(archive)
    assert "events_per_service_per_day" in text
    assert "radius_failures_by_user_day" in text
    assert ORG in text
