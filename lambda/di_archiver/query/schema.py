"""The Athena/Glue schema of the archive: the ONE definition the CDK construct, the generated
DDL and the local DuckDB engine are all built from.

Tables (all over the same ``org=/svc=/dt=`` objects, with partition projection):

* ``events_json`` -- typed envelope columns via the OpenX JSON SerDe. ``@version`` is mapped
  to ``at_version``; variable-shape objects (``association``, ``auth_context``) are ``string``
  so the SerDe hands back their JSON text instead of failing on a shape it did not expect;
  ``changes[].from/to`` are ``string`` because DI puts bools, strings and arrays there.
  Malformed JSON is NOT ignored: a bad line fails the query rather than vanishing from it.
* ``events_raw`` -- one ``line string`` column per event, so any field, including ones this
  schema does not name, is reachable with ``json_extract_scalar(line, '$.x')``. Its ``svc``
  projection is ``injected``, so it can read a service that the typed table does not list yet
  (the query must then say ``svc = '<name>'``).
* ``events`` (view) -- ``events_json`` with ``timestamp`` typed as ``timestamp(3)`` UTC,
  the original string kept as ``timestamp_raw``, partition columns exposed for pruning.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from di_archiver.layout import DATE_PARTITION, ORG_PARTITION, SERVICE_PARTITION
from di_archiver.services import KNOWN_SERVICES, UNRECOGNISED_SERVICE_PARTITION

DEFAULT_DATABASE = "di_archive"
TYPED_TABLE = "events_json"
RAW_TABLE = "events_raw"
VIEW = "events"
TABLES = (TYPED_TABLE, RAW_TABLE, VIEW)

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
LAZY_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
# TextInputFormat decompresses .gz transparently, as Athena does for any text table.
INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
# JSON text never contains a raw U+0001 (control characters are escaped), so splitting on it
# yields the whole line as the one column.
RAW_FIELD_DELIMITER = "\u0001"

DT_RANGE_START = "2020-01-01"
DT_FORMAT_JAVA = "yyyy-MM-dd"

# Words Hive's DDL parser reserves that appear as DI field names inside structs.
_RESERVED = frozenset({"from", "to", "timestamp", "date", "user"})


class HiveType:
    """A column type renderable for Glue/Hive DDL, Trino (views) and DuckDB."""

    def hive(self, *, ddl: bool = False) -> str:
        raise NotImplementedError

    def trino(self) -> str:
        raise NotImplementedError

    def duckdb(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Primitive(HiveType):
    name: str  # hive spelling: string, boolean, bigint, double

    def hive(self, *, ddl: bool = False) -> str:
        return self.name

    def trino(self) -> str:
        return {"string": "varchar"}.get(self.name, self.name)

    def duckdb(self) -> str:
        return {"string": "VARCHAR", "boolean": "BOOLEAN", "bigint": "BIGINT"}.get(
            self.name, self.name.upper()
        )


@dataclass(frozen=True)
class Struct(HiveType):
    fields: tuple[tuple[str, HiveType], ...]

    def hive(self, *, ddl: bool = False) -> str:
        def name(field: str) -> str:
            return f"`{field}`" if ddl and field.lower() in _RESERVED else field

        return "struct<" + ",".join(f"{name(n)}:{t.hive(ddl=ddl)}" for n, t in self.fields) + ">"

    def trino(self) -> str:
        def name(field: str) -> str:
            lower = field.lower()
            return f'"{lower}"' if lower in _RESERVED else lower

        return "row(" + ", ".join(f"{name(n)} {t.trino()}" for n, t in self.fields) + ")"

    def duckdb(self) -> str:
        # DuckDB matches JSON keys case-sensitively, so keep DI's spelling (displayName).
        return "STRUCT(" + ", ".join(f'"{n}" {t.duckdb()}' for n, t in self.fields) + ")"


@dataclass(frozen=True)
class Array(HiveType):
    element: HiveType

    def hive(self, *, ddl: bool = False) -> str:
        return f"array<{self.element.hive(ddl=ddl)}>"

    def trino(self) -> str:
        return f"array({self.element.trino()})"

    def duckdb(self) -> str:
        return f"{self.element.duckdb()}[]"


STRING = Primitive("string")
BOOLEAN = Primitive("boolean")
DOUBLE = Primitive("double")


def _strings(*names: str) -> Struct:
    return Struct(tuple((name, STRING) for name in names))


_USER_AGENT = _strings(
    "name", "major", "minor", "patch", "version", "os", "os_name", "os_full", "os_major",
    "os_minor", "os_patch", "os_version", "device", "build",
)  # fmt: skip


@dataclass(frozen=True)
class Column:
    """A data column; ``json_key`` differs from ``name`` only where Hive cannot spell the key."""

    name: str
    type: HiveType
    comment: str = ""
    json_key: str | None = None

    @property
    def key(self) -> str:
        return self.json_key or self.name


COLUMNS: tuple[Column, ...] = (
    Column("id", STRING, "DI event id (24-hex, UUID or upper-case UUID)"),
    Column("event_type", STRING),
    Column("service", STRING, "DI service of the event (svc partition is the same value)"),
    Column("timestamp", STRING, "RFC 3339 UTC with 0-9 fractional digits; typed in the view"),
    Column("organization", STRING),
    Column("at_version", STRING, "the @version field", json_key="@version"),
    Column("provider", STRING),
    Column("success", BOOLEAN),
    Column("client_ip", STRING),
    Column("auth_method", STRING),
    Column("error_message", STRING),
    Column("mfa", BOOLEAN),
    Column("mfa_meta", _strings("type")),
    Column("username", STRING),
    Column(
        "initiated_by",
        _strings("id", "type", "email", "username", "source", "user_id", "provider"),
    ),
    Column(
        "resource",
        _strings(
            "id",
            "type",
            "username",
            "email",
            "name",
            "recipient_email",
            "application_id",
            "application_name",
            "application_category",
        ),
    ),
    Column(
        "changes",
        Array(_strings("field", "from", "to")),
        "from/to hold any JSON (bool, string, array): kept as JSON text",
    ),
    Column("correlation", _strings("id", "type")),
    Column(
        "geoip",
        Struct(
            (
                *_strings(
                    "country_code", "region_code", "region_name", "continent_code", "timezone"
                ).fields,
                ("latitude", DOUBLE),
                ("longitude", DOUBLE),
            )
        ),
    ),
    Column("useragent", _USER_AGENT, "parsed user agent (most services)"),
    Column("user_agent", _USER_AGENT, "parsed user agent (password_manager, reports, ...)"),
    Column(
        "application",
        _strings(
            "id", "name", "display_label", "sso_url", "sso_type", "version", "path", "publisher"
        ),
    ),
    Column("system", _strings("id", "hostname", "displayName", "type")),
    Column("association", STRING, "JSON text; shape varies by event type"),
    Column("auth_context", STRING, "JSON text; shape varies by event type"),
    Column("idp_initiated", BOOLEAN),
    Column("sso_token_success", BOOLEAN),
    Column("auth_type", STRING),
    Column("eap_type", STRING),
    Column("nas_mfa_state", STRING),
)

RAW_COLUMNS: tuple[Column, ...] = (
    Column("line", STRING, "the archived event exactly as stored (one JSON object)"),
)

PARTITION_COLUMNS: tuple[Column, ...] = (
    Column(ORG_PARTITION, STRING, "organisation id (partition)"),
    Column(SERVICE_PARTITION, STRING, "service (partition)"),
    Column(DATE_PARTITION, STRING, "UTC day yyyy-MM-dd (partition); filter on it to prune"),
)


def projected_services(extra_services: Sequence[str] = ()) -> tuple[str, ...]:
    """Services the typed table's ``svc`` enum lists: known, extras, and the catch-all."""
    ordered = [*KNOWN_SERVICES, *extra_services, UNRECOGNISED_SERVICE_PARTITION]
    return tuple(dict.fromkeys(ordered))


def storage_location(bucket: str, prefix: str) -> str:
    """``s3://bucket/prefix/`` (the table LOCATION; an empty prefix is the bucket root)."""
    clean = prefix.strip("/")
    return f"s3://{bucket}/{clean}/" if clean else f"s3://{bucket}/"


def storage_location_template(bucket: str, prefix: str) -> str:
    """The projection template; filled in, it is the directory ``layout`` writes objects to."""
    return (
        storage_location(bucket, prefix)
        + f"{ORG_PARTITION}=${{{ORG_PARTITION}}}/{SERVICE_PARTITION}=${{{SERVICE_PARTITION}}}/"
        + f"{DATE_PARTITION}=${{{DATE_PARTITION}}}/"
    )


def projection_properties(
    *,
    bucket: str,
    prefix: str,
    org_ids: Sequence[str],
    services: Sequence[str] | None,
) -> dict[str, str]:
    """Table parameters for partition projection.

    ``org`` is an enum of the configured org ids so "all orgs" and "one org" both work
    without a WHERE clause; ``services=None`` makes ``svc`` injected (any value, but the
    query must name it) -- used by the raw table so a new service is never unreachable.
    """
    if not org_ids:
        raise ValueError("at least one org id is needed for the org projection")
    props = {
        "projection.enabled": "true",
        f"projection.{ORG_PARTITION}.type": "enum",
        f"projection.{ORG_PARTITION}.values": ",".join(org_ids),
        f"projection.{DATE_PARTITION}.type": "date",
        f"projection.{DATE_PARTITION}.range": f"{DT_RANGE_START},NOW",
        f"projection.{DATE_PARTITION}.format": DT_FORMAT_JAVA,
        f"projection.{DATE_PARTITION}.interval": "1",
        f"projection.{DATE_PARTITION}.interval.unit": "DAYS",
        "storage.location.template": storage_location_template(bucket, prefix),
    }
    if services is None:
        props[f"projection.{SERVICE_PARTITION}.type"] = "injected"
    else:
        props[f"projection.{SERVICE_PARTITION}.type"] = "enum"
        props[f"projection.{SERVICE_PARTITION}.values"] = ",".join(services)
    return props


def typed_serde_parameters() -> dict[str, str]:
    """OpenX SerDe options: map ``@version``; malformed JSON is deliberately NOT ignored."""
    params = {"case.insensitive": "true", "dots.in.keys": "false"}
    for column in COLUMNS:
        if column.json_key is not None:
            params[f"mapping.{column.name}"] = column.json_key
    return params


def raw_serde_parameters() -> dict[str, str]:
    return {"field.delim": RAW_FIELD_DELIMITER, "serialization.format": RAW_FIELD_DELIMITER}


@dataclass(frozen=True)
class TableSpec:
    """Everything a Glue table or a CREATE EXTERNAL TABLE statement needs."""

    name: str
    columns: tuple[Column, ...]
    serde: str
    serde_parameters: dict[str, str]
    location: str
    parameters: dict[str, str]
    comment: str


def table_specs(
    *,
    bucket: str,
    prefix: str,
    org_ids: Sequence[str],
    extra_services: Sequence[str] = (),
) -> tuple[TableSpec, TableSpec]:
    """The typed and the raw table over the archive at ``s3://bucket/prefix/``."""
    location = storage_location(bucket, prefix)
    common = {"classification": "json", "compressionType": "gzip", "typeOfData": "file"}
    typed = TableSpec(
        name=TYPED_TABLE,
        columns=COLUMNS,
        serde=JSON_SERDE,
        serde_parameters=typed_serde_parameters(),
        location=location,
        parameters={
            **common,
            **projection_properties(
                bucket=bucket,
                prefix=prefix,
                org_ids=org_ids,
                services=projected_services(extra_services),
            ),
        },
        comment="DI events, typed envelope columns (query the events view)",
    )
    raw = TableSpec(
        name=RAW_TABLE,
        columns=RAW_COLUMNS,
        serde=LAZY_SERDE,
        serde_parameters=raw_serde_parameters(),
        location=location,
        parameters={
            **common,
            "classification": "text",
            **projection_properties(bucket=bucket, prefix=prefix, org_ids=org_ids, services=None),
        },
        comment="DI events as raw JSON lines; svc is injected: filter svc = '<service>'",
    )
    return typed, raw


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    if value == RAW_FIELD_DELIMITER:
        escaped = "\\u0001"
    return f"'{escaped}'"


def create_table_ddl(spec: TableSpec, *, database: str = DEFAULT_DATABASE) -> str:
    """Athena ``CREATE EXTERNAL TABLE`` for ``spec`` (what the construct deploys via Glue)."""
    columns = ",\n".join(
        f"  `{c.name}` {c.type.hive(ddl=True)}"
        + (f" COMMENT {_quote(c.comment)}" if c.comment else "")
        for c in spec.columns
    )
    partitions = ",\n".join(f"  `{c.name}` {c.type.hive(ddl=True)}" for c in PARTITION_COLUMNS)
    serde_props = ",\n".join(
        f"  {_quote(k)} = {_quote(v)}" for k, v in spec.serde_parameters.items()
    )
    tbl_props = ",\n".join(f"  {_quote(k)} = {_quote(v)}" for k, v in spec.parameters.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{spec.name}` (\n{columns}\n)\n"
        f"COMMENT {_quote(spec.comment)}\n"
        f"PARTITIONED BY (\n{partitions}\n)\n"
        f"ROW FORMAT SERDE {_quote(spec.serde)}\n"
        f"WITH SERDEPROPERTIES (\n{serde_props}\n)\n"
        f"STORED AS INPUTFORMAT {_quote(INPUT_FORMAT)}\n"
        f"OUTPUTFORMAT {_quote(OUTPUT_FORMAT)}\n"
        f"LOCATION {_quote(spec.location)}\n"
        f"TBLPROPERTIES (\n{tbl_props}\n)"
    )


def _view_select_items() -> list[tuple[str, str, HiveType, str]]:
    """(expression, output name, Glue type, Trino type) of every view column, in order."""
    items: list[tuple[str, str, HiveType, str]] = [
        (
            # Cut the fraction to milliseconds first: engines that round (DuckDB) would
            # otherwise move 23:59:59.9999999 into the next day, away from its dt partition.
            'CAST(from_iso8601_timestamp(CASE WHEN length("timestamp") > 24 '
            'THEN substr("timestamp", 1, 23) || \'Z\' ELSE "timestamp" END) '
            "AT TIME ZONE 'UTC' AS timestamp(3))",
            "timestamp",
            Primitive("timestamp"),
            "timestamp(3)",
        ),
        ('"timestamp"', "timestamp_raw", STRING, "varchar"),
    ]
    for column in (*COLUMNS, *PARTITION_COLUMNS):
        if column.name != "timestamp":
            items.append((f'"{column.name}"', column.name, column.type, column.type.trino()))
    return items


def view_sql(*, source_table: str = TYPED_TABLE) -> str:
    """The ``events`` view body in Athena (Trino) SQL."""
    select = ",\n  ".join(
        expr if expr == f'"{name}"' else f'{expr} AS "{name}"'
        for expr, name, _, _ in _view_select_items()
    )
    return f'SELECT\n  {select}\nFROM "{source_table}"'


def view_columns() -> list[tuple[str, HiveType, str]]:
    """(name, Glue type, Trino type) of the view's output, for the Glue view definition."""
    return [(name, hive, trino) for _, name, hive, trino in _view_select_items()]


def create_view_ddl(*, database: str = DEFAULT_DATABASE) -> str:
    """Athena ``CREATE OR REPLACE VIEW`` equivalent of the Glue view the construct deploys."""
    return f'CREATE OR REPLACE VIEW "{database}"."{VIEW}" AS\n{view_sql()}'


def presto_view_original_text(*, database: str, catalog: str = "awsdatacatalog") -> str:
    """Glue ``ViewOriginalText`` Athena expects for a view created outside Athena."""
    definition = {
        "originalSql": view_sql(),
        "catalog": catalog,
        "schema": database,
        "columns": [{"name": name, "type": trino} for name, _, trino in view_columns()],
    }
    encoded = base64.b64encode(json.dumps(definition).encode()).decode()
    return f"/* Presto View: {encoded} */"
