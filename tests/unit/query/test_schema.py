from datetime import date

import pytest
import sqlglot
from sqlglot import exp

from di_archiver.layout import bucket_object_key, day_start_ns, sealed_day_key
from di_archiver.query import schema
from di_archiver.services import KNOWN_SERVICES

ORG = "64a0c0ffee0000000000a001"
DAY = date(2026, 5, 4)
HOUR = 3600 * 1_000_000_000
BUCKET = "archive-bucket"


def _fill(template: str, org: str, svc: str, dt: str) -> str:
    return template.replace("${org}", org).replace("${svc}", svc).replace("${dt}", dt)


def _key_from_location(location: str) -> str:
    return location.removeprefix(f"s3://{BUCKET}/")


@pytest.mark.parametrize("prefix", ["di", "deep/nested/prefix", ""])
@pytest.mark.parametrize("service", ["sso", "password_manager", "_unrecognised"])
def test_template_filled_with_partition_values_is_the_directory_of_layout_keys(
    prefix: str, service: str
) -> None:
    # Given the key functions' output for sample values
    start = day_start_ns(DAY) + 9 * HOUR
    keys = [
        bucket_object_key(prefix, ORG, service, start, start + HOUR),
        sealed_day_key(prefix, ORG, service, DAY),
    ]
    # When the projection template is filled with the same partition values
    template = schema.storage_location_template(BUCKET, prefix)
    directory = _key_from_location(_fill(template, ORG, service, DAY.isoformat()))
    # Then every key lives directly in that directory
    for key in keys:
        assert key.rsplit("/", 1)[0] + "/" == directory


@pytest.mark.parametrize("prefix", ["di", "a/b", ""])
def test_layout_keys_parse_back_to_the_template_partition_values(prefix: str) -> None:
    # Given a key written by the layout
    start = day_start_ns(DAY) + 23 * HOUR
    key = bucket_object_key(prefix, ORG, "radius", start, start + HOUR)
    # When the template is read as a pattern over the key's directory
    template = _key_from_location(schema.storage_location_template(BUCKET, prefix))
    pattern = (
        "^"
        + template.replace("${org}", "(?P<org>[^/]+)")
        .replace("${svc}", "(?P<svc>[^/]+)")
        .replace("${dt}", "(?P<dt>[^/]+)")
        + "[^/]+$"
    )
    import re

    match = re.match(pattern, key)
    # Then the partition values are the ones the key was written with, in the date format
    assert match is not None
    assert match.groupdict() == {"org": ORG, "svc": "radius", "dt": "2026-05-04"}
    assert schema.DT_FORMAT_JAVA == "yyyy-MM-dd"


def test_typed_table_projection_enumerates_orgs_and_services_and_projects_days() -> None:
    # Given two orgs and an extra service from configuration
    typed, raw = schema.table_specs(
        bucket=BUCKET, prefix="di", org_ids=[ORG, "64a0c0ffee0000000000a002"],
        extra_services=["pam"],
    )  # fmt: skip
    props = typed.parameters
    # Then org is an enum of exactly the configured orgs (all or one need no WHERE)
    assert props["projection.enabled"] == "true"
    assert props["projection.org.type"] == "enum"
    assert props["projection.org.values"] == f"{ORG},64a0c0ffee0000000000a002"
    # And svc lists every known service, the extra one and the catch-all partition
    services = props["projection.svc.values"].split(",")
    assert set(KNOWN_SERVICES) <= set(services)
    assert "pam" in services
    assert "_unrecognised" in services
    # And dt is a daily date projection up to now
    assert props["projection.dt.type"] == "date"
    assert props["projection.dt.range"] == "2020-01-01,NOW"
    assert props["projection.dt.format"] == "yyyy-MM-dd"
    assert props["projection.dt.interval.unit"] == "DAYS"
    # And the raw table injects svc so a service the enum lacks is still readable
    assert raw.parameters["projection.svc.type"] == "injected"
    assert "projection.svc.values" not in raw.parameters


def test_serdes_map_version_and_never_ignore_malformed_json() -> None:
    typed, raw = schema.table_specs(bucket=BUCKET, prefix="di", org_ids=[ORG])
    assert typed.serde == "org.openx.data.jsonserde.JsonSerDe"
    assert typed.serde_parameters["mapping.at_version"] == "@version"
    assert "ignore.malformed.json" not in typed.serde_parameters
    assert raw.serde == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    assert [c.name for c in raw.columns] == ["line"]


def test_typed_columns_read_every_variant_of_the_envelope() -> None:
    types = {c.name: c.type.hive() for c in schema.COLUMNS}
    # timestamp stays a string (0-9 fractional digits); the view types it
    assert types["timestamp"] == "string"
    assert types["at_version"] == "string"
    # both user agent spellings exist
    assert types["useragent"] == types["user_agent"]
    # changes from/to accept bools, strings and arrays as JSON text
    assert types["changes"] == "array<struct<field:string,from:string,to:string>>"
    assert types["success"] == "boolean"
    partition_names = {c.name for c in schema.PARTITION_COLUMNS}
    assert partition_names == {"org", "svc", "dt"}
    assert not partition_names & set(types), "a partition column repeats a data column"


def test_no_partition_or_column_name_collides() -> None:
    names = [c.name for c in (*schema.COLUMNS, *schema.PARTITION_COLUMNS)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("dialect", ["athena"])
def test_generated_ddl_parses_as_athena_create_table(dialect: str) -> None:
    # Given the DDL generated from the same specs the construct deploys
    for spec in schema.table_specs(bucket=BUCKET, prefix="di", org_ids=[ORG]):
        ddl = schema.create_table_ddl(spec)
        # When sqlglot parses it strictly
        parsed = sqlglot.parse_one(ddl, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        # Then it is a real CREATE with every column and partition, not a fallback command
        assert isinstance(parsed, exp.Create)
        defined = {c.name for c in parsed.find_all(exp.ColumnDef)}
        assert {c.name for c in spec.columns} <= defined
        assert {"org", "svc", "dt"} <= defined


@pytest.mark.parametrize("dialect", ["athena", "trino"])
def test_view_sql_parses_and_types_the_timestamp(dialect: str) -> None:
    parsed = sqlglot.parse_one(
        schema.create_view_ddl(), read=dialect, error_level=sqlglot.ErrorLevel.RAISE
    )
    assert isinstance(parsed, exp.Create)
    assert [name for name, _, _ in schema.view_columns()][:2] == ["timestamp", "timestamp_raw"]
    outputs = [s.alias_or_name for s in parsed.expression.selects]
    assert outputs == [name for name, _, _ in schema.view_columns()]


def test_presto_view_text_embeds_the_view_sql_and_columns() -> None:
    import base64
    import json

    text = schema.presto_view_original_text(database="di_archive")
    assert text.startswith("/* Presto View: ")
    assert text.endswith(" */")
    decoded = json.loads(base64.b64decode(text.removeprefix("/* Presto View: ")[:-3]))
    assert decoded["originalSql"] == schema.view_sql()
    assert decoded["schema"] == "di_archive"
    types = {c["name"]: c["type"] for c in decoded["columns"]}
    assert types["timestamp"] == "timestamp(3)"
    assert types["changes"] == 'array(row(field varchar, "from" varchar, "to" varchar))'
