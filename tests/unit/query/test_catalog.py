import pytest
import sqlglot
from sqlglot import exp

from di_archiver.errors import QueryError
from di_archiver.query.catalog import DAY_PARAMS, get_named_query, named_queries, parse_named_query
from di_archiver.query.local import bind_parameters, day_range_of, parse_athena

REQUIRED = {
    "failed_admin_logins",
    "user_group_membership_changes",
    "radius_failures_by_user_day",
    "events_by_admin",
    "sso_apps_for_user",
}


def test_every_question_the_issue_asks_has_a_named_query() -> None:
    assert set(named_queries()) >= REQUIRED
    assert len(named_queries()) >= len(REQUIRED) + 3


@pytest.mark.parametrize("name", sorted(named_queries()))
@pytest.mark.parametrize("dialect", ["athena", "trino"])
def test_named_query_parses_strictly_as_athena_sql(name: str, dialect: str) -> None:
    query = named_queries()[name]
    parsed = sqlglot.parse_one(query.sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    assert isinstance(parsed, exp.Query)
    # one '?' per declared parameter, in order
    assert len(list(parsed.find_all(exp.Placeholder))) == len(query.params)


@pytest.mark.parametrize("name", sorted(named_queries()))
def test_named_query_prunes_by_the_day_parameters(name: str) -> None:
    # Given the day parameters bound to a one-week window
    query = named_queries()[name]
    assert set(DAY_PARAMS) <= set(query.params)
    values = dict.fromkeys(query.params, "x") | {"from_day": "2026-04-01", "to_day": "2026-04-07"}
    # When the date range the statement can read is derived
    statement = parse_athena(bind_parameters(query.sql, query.bind(values)))
    days = day_range_of(statement)
    # Then it is exactly that window (Athena reads 7 days of partitions, not all)
    assert (str(days.first), str(days.last)) == ("2026-04-01", "2026-04-07")


def test_binding_names_missing_and_unknown_parameters() -> None:
    query = get_named_query("events_by_admin")
    with pytest.raises(QueryError, match="admin"):
        query.bind({"from_day": "2026-01-01", "to_day": "2026-01-02"})
    with pytest.raises(QueryError, match="bogus"):
        query.bind({"admin": "a", "from_day": "x", "to_day": "y", "bogus": "1"})


def test_unknown_named_query_lists_the_valid_names() -> None:
    with pytest.raises(QueryError, match="failed_admin_logins"):
        get_named_query("nope")


def test_header_is_required() -> None:
    with pytest.raises(QueryError):
        parse_named_query("SELECT 1")
