"""Every packaged named query finds something in the demo's archive.

Athena's named queries are only worth shipping if they answer on real-shaped data; the demo's
archive (the simulator with the demo's settings) is that data for everyone without an account.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from di_archiver.commands.demo import run_demo
from di_archiver.query import catalog, local

# For queries about one person: SQL that picks, from the archive itself, someone the question
# is about (a query returning rows for a made-up name would prove nothing).
SUBJECTS = {
    "admin": "SELECT initiated_by.email FROM events WHERE initiated_by.type = 'admin' LIMIT 1",
    "user": {
        "sso_apps_for_user": (
            "SELECT initiated_by.username FROM events WHERE svc = 'sso' AND success = true LIMIT 1"
        ),
        "user_group_membership_changes": (
            "SELECT json_extract_scalar(association, '$.connection.to.name') FROM events "
            "WHERE event_type = 'association_change' "
            "AND json_extract_scalar(association, '$.connection.from.type') = 'user_group' LIMIT 1"
        ),
    },
}


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The demo exactly as `scripts/demo` runs it (its defaults), into a scratch directory.
    directory = tmp_path_factory.mktemp("demo") / "di-archive"
    result = run_demo(directory)
    assert result.passed
    return directory


def _subject(archive: Path, query: str, param: str) -> str:
    finder = SUBJECTS[param]
    sql = finder if isinstance(finder, str) else finder[query]
    rows = local.run_query(sql, archive=archive).rows
    assert rows, f"the demo archive has no subject for {query}'s {param}"
    return str(rows[0][0])


@pytest.mark.parametrize("name", sorted(catalog.named_queries()))
def test_every_named_query_returns_rows_in_the_demo_archive(demo_archive: Path, name: str) -> None:
    # Given the demo's archive and a named query, with the archive's whole day range
    query = catalog.named_queries()[name]
    days = sorted({f.day for f in local.local_partition_files(demo_archive, local.DayRange())})
    values = {"from_day": days[0].isoformat(), "to_day": days[-1].isoformat()}
    for param in query.params:
        if param not in values:
            values[param] = _subject(demo_archive, name, param)
    # When it runs over the archive
    result = local.run_named(name, values, archive=demo_archive)
    # Then it answers with at least one row
    assert len(result.rows) >= 1, f"{name} found nothing with {values}"
