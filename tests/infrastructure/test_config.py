"""The CDK context model: defaults, CLI strings, and a clear error for every bad value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from di_archiver.settings import ArchiverSettings
from infra.config import ConfigError, DeploymentConfig, StorageClass

from .conftest import ORG, PROJECT_ROOT, cdk_json_context


def test_cdk_json_context_is_valid_and_matches_the_model_defaults() -> None:
    # Given the context a fresh clone ships with
    context = cdk_json_context()
    # When it is validated
    config = DeploymentConfig.from_context(context)
    # Then it equals the model's own defaults for every key it sets (one source of truth)
    assert config == DeploymentConfig(org_ids=(ORG,))


def test_cli_strings_are_coerced_like_cdk_json_values() -> None:
    # Given values as `cdk deploy -c key=value` passes them (always strings)
    context = {
        "orgIds": f"{ORG}, 64a0c0ffee0000000000a002",
        "retentionDays": "3650",
        "accessLogging": "false",
        "transitions": '{"GLACIER_IR": 120}',
        "objectLock": '{"mode": "COMPLIANCE", "days": 365}',
        "alarmEmail": "null",
    }
    # When validated
    config = DeploymentConfig.from_context(context)
    # Then they mean what the JSON values would mean
    assert config.org_ids == (ORG, "64a0c0ffee0000000000a002")
    assert config.retention_days == 3650
    assert config.access_logging is False
    assert config.transitions == {StorageClass.GLACIER_IR: 120}
    assert config.object_lock is not None
    assert config.object_lock.days == 365
    assert config.alarm_email is None


def test_cdk_own_context_keys_are_ignored() -> None:
    # Given CDK feature flags and internal keys next to ours
    context = {"orgIds": ORG, "@aws-cdk/core:x": True, "aws:cdk:bundling-stacks": []}
    # When validated / Then they are not mistaken for typos
    assert DeploymentConfig.from_context(context).org_ids == (ORG,)


BAD_CONTEXTS: list[tuple[dict[str, Any], list[str]]] = [
    ({"retentionDay": 30}, ["retentionDay", "did you mean 'retentionDays'"]),
    ({"orgIds": None}, ["orgIds"]),
    ({"orgIds": "not-an-org"}, ["orgIds", "24 lower-case hex"]),
    ({"lookbackDays": -1}, ["lookbackDays", "greater than or equal to 1"]),
    ({"noncurrentDays": -5}, ["noncurrentDays", "greater than or equal to 1"]),
    ({"retentionDays": -1}, ["retentionDays", "greater than or equal to 1"]),
    ({"schedule": "every 15 minutes"}, ["schedule", "rate(15 minutes)"]),
    ({"schedule": "rate(1 hours)"}, ["schedule", "singular"]),
    ({"schedule": "rate(0 minutes)"}, ["schedule"]),
    ({"maintainSchedule": "daily"}, ["maintainSchedule", "cron("]),
    ({"verifySchedule": "weekly"}, ["verifySchedule", "cron("]),
    ({"verifyDays": 0}, ["verifyDays"]),
    (
        {"objectLock": {"mode": "GOVERNANCE", "days": 30}, "versioning": False},
        ["requires versioning", "versioning=true"],
    ),
    ({"versioning": False}, ["Object Lock (on by default) requires versioning"]),
    ({"objectLock": "off"}, ["objectLockOffReason"]),
    ({"objectLock": "off", "objectLockOffReason": "short"}, ["at least 20 characters"]),
    (
        {"objectLockOffReason": "the archive is a disposable test copy"},
        ["only for objectLock=off"],
    ),
    (
        {"objectLock": {"mode": "COMPLIANCE", "days": 400}, "retentionDays": 365},
        ["retentionDays (365) is shorter than objectLock.days (400)", "raise retentionDays"],
    ),
    ({"objectLock": {"mode": "FOREVER", "days": 3}}, ["objectLock.ObjectLock.mode", "GOVERNANCE"]),
    ({"transitions": {"STANDARD_IA": 10}}, ["transitions", "STANDARD_IA needs at least 30"]),
    ({"transitions": {"ONEZONE_IA": 29}}, ["transitions", "ONEZONE_IA needs at least 30"]),
    (
        {"transitions": {"STANDARD_IA": 30, "GLACIER_IR": 45}},
        ["transitions", "GLACIER_IR must be at least 30 days after STANDARD_IA", "60"],
    ),
    (
        {"transitions": {"DEEP_ARCHIVE": 90, "GLACIER": 180}},
        ["transitions", "DEEP_ARCHIVE (90 d) must come after GLACIER (180 d)"],
    ),
    ({"transitions": {"GLACIER_IR": -1}}, ["transitions", "negative"]),
    ({"transitions": {"TAPE": 90}}, ["transitions"]),
    (
        {"transitions": {"GLACIER_IR": 400}, "retentionDays": 365},
        ["retentionDays (365) must be greater than the last transition (400 d)"],
    ),
    ({"alarmEmail": "security-at-example"}, ["alarmEmail", "e-mail"]),
    ({"encryption": "aes"}, ["encryption"]),
    ({"bucketMinutes": 7}, ["bucketMinutes", "divide 1440"]),
    ({"services": "sso,bogus"}, ["services", "bogus"]),
    ({"logRetentionDays": 10}, ["logRetentionDays", "accepts only"]),
    ({"freshnessAlarmSeconds": 600}, ["freshnessAlarmSeconds (600) would alarm"]),
    ({"missedRunsAlarmPeriods": 48, "schedule": "rate(1 hour)"}, ["missedRunsAlarmPeriods"]),
    ({"archivePrefix": "/di/"}, ["archivePrefix", "no leading or trailing"]),
    ({"checkpointParameterPrefix": "di/checkpoints"}, ["checkpointParameterPrefix"]),
    ({"memorySize": 64}, ["memorySize"]),
]


@pytest.mark.parametrize(("override", "expected"), BAD_CONTEXTS)
def test_bad_context_fails_naming_the_key_and_the_fix(
    override: dict[str, Any], expected: list[str]
) -> None:
    # Given the shipped context with one mistake
    context = {**cdk_json_context(), **override}
    context = {k: v for k, v in context.items() if v is not None}
    # When validated
    with pytest.raises(ConfigError) as caught:
        DeploymentConfig.from_context(context)
    # Then the message names the context key (camelCase) and what to do
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message
    assert "DI_ARCHIVER_" not in message


def test_missing_org_ids_says_how_to_pass_them() -> None:
    # Given no orgIds at all
    # When validated
    with pytest.raises(ConfigError, match=r"-c orgIds="):
        DeploymentConfig.from_context({})


def test_runtime_settings_round_trip_through_the_environment() -> None:
    # Given a config with every runtime-relevant option set
    config = DeploymentConfig.from_context(
        {
            "orgIds": [ORG],
            "services": ["sso", "directory"],
            "baseUrl": "http://127.0.0.1:8080",
            "authKind": "service_account",
            "objectLock": {"mode": "GOVERNANCE", "days": 30},
        }
    )
    # When turned into the function's settings
    settings = config.runtime_settings(archive_bucket="b", kms_key_id="k", secret_id="s")
    # Then the runtime model accepts them as given
    assert settings.services == ("sso", "directory")
    assert settings.object_lock_days == 30
    assert settings.di_base_url == "http://127.0.0.1:8080"
    assert isinstance(settings, ArchiverSettings)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("cron(99 2 * * ? *)", "minutes field '99' is out of range"),
        ("cron(0 25 * * ? *)", "hours field '25'"),
        ("cron(0 4 * 13 ? *)", "month field '13'"),
        ("cron(0 4 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 4 * * ?)", "needs six fields"),
    ],
)
def test_invalid_cron_fails_with_the_key_and_the_fix(expression: str, fragment: str) -> None:
    # Given a maintain schedule EventBridge would reject (or never fire)
    context = {"orgIds": "64a0c0ffee0000000000a001", "maintainSchedule": expression}
    # When the context is validated
    with pytest.raises(ConfigError) as caught:
        DeploymentConfig.from_context(context)
    # Then the message names the key, the field and a valid example
    message = str(caught.value)
    assert "maintainSchedule" in message
    assert fragment in message
    assert "e.g. cron(30 2 * * ? *)" in message


@pytest.mark.parametrize(
    "expression",
    [
        "cron(30 2 * * ? *)",
        "cron(0 4 ? * SUN *)",
        "cron(0/15 8-18 ? * MON-FRI *)",
        "cron(0 8 L * ? *)",
    ],
)
def test_valid_cron_expressions_pass(expression: str) -> None:
    context = {"orgIds": "64a0c0ffee0000000000a001", "verifySchedule": expression}
    assert DeploymentConfig.from_context(context).verify_schedule == expression


def test_synth_with_invalid_context_prints_one_line_without_traceback(tmp_path: Path) -> None:
    # Given the CDK app run as the CDK CLI runs it, with an invalid cron in the context
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps(
            {"orgIds": "64a0c0ffee0000000000a001", "maintainSchedule": "cron(99 2 * * ? *)"}
        ),
    }
    for name in list(env):
        if name.startswith("JSII_SILENCE"):
            del env[name]  # the app itself must keep the jsii banner away
    # When it runs
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # Then it fails with the key and the fix on one line, no traceback, no jsii banner
    assert done.returncode == 1
    assert "maintainSchedule" in done.stderr
    assert "Traceback" not in done.stderr
    assert "!!" not in done.stderr + done.stdout
    assert not list(tmp_path.iterdir())
