"""The settings model: env parsing, every validation rule, unknown variables, safe messages."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from typing import Any

import pytest

from di_archiver.errors import SettingsError
from di_archiver.settings import (
    ArchiverSettings,
    AuthKind,
    Region,
    settings_env_names,
)

ORG_A = "64a0c0ffee0000000000a001"
ORG_B = "64a0c0ffee0000000000a002"
BASE_ENV = {"DI_ARCHIVER_ORG_IDS": ORG_A, "DI_ARCHIVER_ARCHIVE_BUCKET": "my-archive"}


def test_from_env_minimal_gives_documented_defaults() -> None:
    # Given only the required variables
    # When settings are read
    settings = ArchiverSettings.from_env(BASE_ENV)
    # Then the documented defaults apply
    assert settings.org_ids == (ORG_A,)
    assert settings.services == ("all",)
    assert settings.bucket_minutes == 60
    assert settings.lag_seconds == 300
    assert settings.settle_seconds == 7200
    assert settings.lookback_days == 90
    assert settings.region is Region.STANDARD
    assert settings.auth_kind is AuthKind.API_KEY
    assert settings.di_base_url == "https://api.jumpcloud.com"
    assert settings.rate_limit_per_second == 10.0


def test_from_env_parses_lists_numbers_and_enums() -> None:
    # Given every kind of value as an environment string
    env = {
        **BASE_ENV,
        "DI_ARCHIVER_ORG_IDS": f" {ORG_A} , {ORG_B} ,",
        "DI_ARCHIVER_SERVICES": "sso,radius",
        "DI_ARCHIVER_BUCKET_MINUTES": "15",
        "DI_ARCHIVER_REGION": "eu",
        "DI_ARCHIVER_AUTH_KIND": "service_account",
        "DI_ARCHIVER_BASE_URL": "http://127.0.0.1:9999/",
    }
    # When settings are read
    settings = ArchiverSettings.from_env(env)
    # Then they are typed and normalised
    assert settings.org_ids == (ORG_A, ORG_B)
    assert settings.services == ("sso", "radius")
    assert settings.bucket_minutes == 15
    assert settings.region is Region.EU
    assert settings.auth_kind is AuthKind.SERVICE_ACCOUNT
    assert settings.di_base_url == "http://127.0.0.1:9999"


def test_region_picks_base_url() -> None:
    # Given / When / Then each region maps to its API host
    settings = ArchiverSettings.from_env({**BASE_ENV, "DI_ARCHIVER_REGION": "in"})
    assert settings.di_base_url == "https://api.in.jumpcloud.com"


def test_variables_without_prefix_are_ignored() -> None:
    # Given unrelated variables (including the CLI's credential variables)
    env = {**BASE_ENV, "PATH": "/bin", "JUMPCLOUD_API_KEY": "k"}
    # When / Then they do not matter
    assert ArchiverSettings.from_env(env).org_ids == (ORG_A,)


def test_unknown_prefixed_variable_is_an_error() -> None:
    # Given a misspelt setting
    env = {**BASE_ENV, "DI_ARCHIVER_BUCKET_MINUTE": "15"}
    # When / Then it is refused, naming it and the known names
    with pytest.raises(SettingsError, match="unknown setting DI_ARCHIVER_BUCKET_MINUTE") as caught:
        ArchiverSettings.from_env(env)
    assert "DI_ARCHIVER_BUCKET_MINUTES" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "setting", "fragment"),
    [
        ({"DI_ARCHIVER_ORG_IDS": ""}, "DI_ARCHIVER_ORG_IDS", "at least 1"),
        ({"DI_ARCHIVER_ORG_IDS": "ACME"}, "DI_ARCHIVER_ORG_IDS", "24 lower-case hex"),
        ({"DI_ARCHIVER_ORG_IDS": f"{ORG_A},{ORG_A}"}, "DI_ARCHIVER_ORG_IDS", "must not repeat"),
        ({"DI_ARCHIVER_SERVICES": "sso,saml"}, "DI_ARCHIVER_SERVICES", "unknown service"),
        ({"DI_ARCHIVER_SERVICES": "all,sso"}, "DI_ARCHIVER_SERVICES", "list it alone"),
        ({"DI_ARCHIVER_SERVICES": ","}, "DI_ARCHIVER_SERVICES", "at least one service"),
        ({"DI_ARCHIVER_BUCKET_MINUTES": "7"}, "DI_ARCHIVER_BUCKET_MINUTES", "must divide 1440"),
        ({"DI_ARCHIVER_BUCKET_MINUTES": "0"}, "DI_ARCHIVER_BUCKET_MINUTES", "must divide 1440"),
        ({"DI_ARCHIVER_BUCKET_MINUTES": "x"}, "DI_ARCHIVER_BUCKET_MINUTES", "valid integer"),
        ({"DI_ARCHIVER_LAG_SECONDS": "-1"}, "DI_ARCHIVER_LAG_SECONDS", "greater than or equal"),
        ({"DI_ARCHIVER_LAG_SECONDS": "86401"}, "DI_ARCHIVER_LAG_SECONDS", "less than or equal"),
        ({"DI_ARCHIVER_SETTLE_SECONDS": "-5"}, "DI_ARCHIVER_SETTLE_SECONDS", "greater than"),
        ({"DI_ARCHIVER_LOOKBACK_DAYS": "91"}, "DI_ARCHIVER_LOOKBACK_DAYS", "less than or equal"),
        ({"DI_ARCHIVER_LOOKBACK_DAYS": "0"}, "DI_ARCHIVER_LOOKBACK_DAYS", "greater than"),
        ({"DI_ARCHIVER_PAGE_LIMIT": "10001"}, "DI_ARCHIVER_PAGE_LIMIT", "less than or equal"),
        (
            {"DI_ARCHIVER_MAX_EVENTS_PER_BUCKET": "0"},
            "DI_ARCHIVER_MAX_EVENTS_PER_BUCKET",
            "greater",
        ),
        ({"DI_ARCHIVER_REGION": "mars"}, "DI_ARCHIVER_REGION", "standard"),
        ({"DI_ARCHIVER_AUTH_KIND": "password"}, "DI_ARCHIVER_AUTH_KIND", "api_key"),
        (
            {"DI_ARCHIVER_TIME_BUDGET_RESERVE_SECONDS": "-1"},
            "DI_ARCHIVER_TIME_BUDGET_RESERVE_SECONDS",
            "greater",
        ),
        ({"DI_ARCHIVER_ARCHIVE_DIR": "/tmp/a"}, "settings", "exactly one of archive_bucket"),
        ({"DI_ARCHIVER_KMS_KEY_ID": ""}, "settings", "kms_key_id is empty"),
    ],
)
def test_each_validation_error_names_the_setting(
    overrides: dict[str, str], setting: str, fragment: str
) -> None:
    # Given one invalid value on top of a valid environment
    env = {**BASE_ENV, **overrides}
    # When settings are read
    with pytest.raises(SettingsError) as caught:
        ArchiverSettings.from_env(env)
    # Then one SettingsError names the setting and says what is wrong
    message = str(caught.value)
    assert message.startswith("invalid settings from environment:")
    assert setting in message
    assert fragment in message


def test_missing_destination_and_missing_orgs() -> None:
    # Given neither an org nor a destination
    # When / Then both problems are reported together
    with pytest.raises(SettingsError) as caught:
        ArchiverSettings.from_env({})
    assert "DI_ARCHIVER_ORG_IDS" in str(caught.value)


def test_validation_message_never_echoes_the_value() -> None:
    # Given a value that looks like a pasted credential in the wrong variable
    leaked = "jc_live_key_do_not_log_0123456789"
    env = {**BASE_ENV, "DI_ARCHIVER_ORG_IDS": leaked}
    # When / Then the message describes the problem without the value
    with pytest.raises(SettingsError) as caught:
        ArchiverSettings.from_env(env)
    assert leaked not in str(caught.value)
    assert caught.value.__cause__ is None


def test_build_reports_source_and_settings_are_frozen() -> None:
    # Given values from CLI arguments
    values: dict[str, Any] = {"org_ids": [ORG_A], "archive_dir": "./a", "bucket_minutes": 13}
    # When / Then the message names the source
    with pytest.raises(SettingsError, match="invalid settings from arguments"):
        ArchiverSettings.build(values)
    settings = ArchiverSettings.build({"org_ids": [ORG_A], "archive_dir": "./a"})
    with pytest.raises(FrozenInstanceError):
        settings.lag_seconds = 1  # type: ignore[misc]


def test_env_names_cover_every_field() -> None:
    # Given / When the names the CDK stack uses
    names = settings_env_names()
    # Then there is one per field, all prefixed, all accepted by from_env
    assert set(names) == {f.name for f in fields(ArchiverSettings)}
    assert all(value.startswith("DI_ARCHIVER_") for value in names.values())
    assert names["org_ids"] == "DI_ARCHIVER_ORG_IDS"


def test_rate_limit_is_read_from_env_and_must_be_positive() -> None:
    # Given a fan-out share of the key's budget
    env = {**BASE_ENV, "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": "2.5"}
    # When read, Then it is a float
    assert ArchiverSettings.from_env(env).rate_limit_per_second == 2.5
    # And a zero rate (which would never send a request) is refused by name
    with pytest.raises(SettingsError, match="DI_ARCHIVER_RATE_LIMIT_PER_SECOND"):
        ArchiverSettings.from_env({**BASE_ENV, "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": "0"})
