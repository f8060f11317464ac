"""The Powertools observer: totals, metric names, masked org ids."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from di_archiver import telemetry
from di_archiver.observability import METRICS_NAMESPACE, Metric
from di_archiver.telemetry import MetricsObserver, mask_org_id

ORG = "64a0c0ffee0000000000a001"


@dataclass
class _Bucket:
    objects_written: int = 2
    unknown_service_events: int = 1
    collisions: int = 0


@dataclass
class _Org:
    org_id: str = ORG
    buckets: int = 3
    buckets_written: int = 2
    buckets_unchanged: int = 1
    events: int = 40
    bytes_written: int = 1234
    freshness_lag_s: float | None = 600.0
    stopped_early: bool = False


def test_mask_org_id() -> None:
    # Given / When / Then only the ends survive
    assert mask_org_id(ORG) == "64a0…a001"
    assert mask_org_id("short") == "…"


def _emit(observer: MetricsObserver, metrics: Metrics) -> dict[str, Any]:
    document = metrics.serialize_metric_set()
    metrics.clear_metrics()
    # A list means the metric was added more than once in the run: exactly what we must not do.
    singles = {k: v[0] for k, v in document.items() if isinstance(v, list) and len(v) == 1}
    return {**document, **singles}


def test_observer_sums_and_emits_every_run_metric(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an observer with its own Metrics and Logger
    metrics = Metrics(namespace=METRICS_NAMESPACE, service="test")
    metrics.clear_metrics()
    observer = MetricsObserver(logger=Logger(service="test"), metrics=metrics)
    # When two buckets and two orgs are reported and the run finishes
    observer.on_bucket(_Bucket())
    observer.on_bucket(_Bucket(collisions=1))
    observer.on_org(_Org())
    observer.on_org(_Org(org_id="64a0c0ffee0000000000a002", freshness_lag_s=900.0, events=2))
    observer.on_warning("unknown service", org_id=ORG, service="pam")
    observer.finish(succeeded=True, api_retries=3, api_errors=4)
    document = _emit(observer, metrics)
    # Then each metric appears once with the summed (or max, for freshness) value
    assert document[Metric.EVENTS_WRITTEN.value] == 42.0
    assert document[Metric.OBJECTS_WRITTEN.value] == 4.0
    assert document[Metric.BUCKETS_WRITTEN.value] == 4.0
    assert document[Metric.BUCKETS_UNCHANGED.value] == 2.0
    assert document[Metric.BYTES_WRITTEN.value] == 2468.0
    assert document[Metric.UNKNOWN_SERVICE_EVENTS.value] == 2.0
    assert document[Metric.ID_COLLISIONS.value] == 1.0
    assert document[Metric.FRESHNESS_LAG_SECONDS.value] == 900.0
    assert document[Metric.API_RETRIES.value] == 3.0
    assert document[Metric.API_ERRORS.value] == 4.0
    assert document[Metric.RUN_SUCCEEDED.value] == 1.0
    assert document[Metric.RUN_FAILED.value] == 0.0
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == METRICS_NAMESPACE
    # And log lines carry masked org ids only
    logs = capsys.readouterr().out
    assert ORG not in logs
    assert "64a0…a001" in [json.loads(line).get("org") for line in logs.splitlines()]


def test_failed_run_counts_run_failed() -> None:
    # Given an observer that saw nothing
    metrics = Metrics(namespace=METRICS_NAMESPACE, service="test")
    metrics.clear_metrics()
    observer = MetricsObserver(logger=Logger(service="test"), metrics=metrics)
    # When the run fails
    observer.finish(succeeded=False)
    document = _emit(observer, metrics)
    # Then RunFailed is 1 and no freshness is claimed
    assert document[Metric.RUN_FAILED.value] == 1.0
    assert document[Metric.RUN_SUCCEEDED.value] == 0.0
    assert Metric.FRESHNESS_LAG_SECONDS.value not in document


DAEMON = "169.254.79.129:2000"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}, True),
        (
            {"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000", "POWERTOOLS_TRACE_DISABLED": "true"},
            False,
        ),
    ],
)
def test_tracing_follows_the_functions_xray_setting(
    environ: dict[str, str], expected: bool
) -> None:
    # Lambda sets the daemon address only when the function's active tracing is on
    assert telemetry.tracing_enabled(environ) is expected


def test_an_untraced_invocation_never_imports_the_xray_sdk() -> None:
    # Given a fresh interpreter without X-Ray tracing (the SDK costs ~0.25 s of a cold start)
    script = (
        "import os, sys\n"
        "os.environ.pop('AWS_XRAY_DAEMON_ADDRESS', None)\n"
        "from di_archiver import telemetry\n"
        "class Context:\n"
        "    function_name, memory_limit_in_mb, aws_request_id = 'f', 128, 'r'\n"
        "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:f'\n"
        "entry = telemetry.lambda_entry(lambda event, context: {'ok': True})\n"
        "assert entry({}, Context()) == {'ok': True}\n"
        "print('aws_xray_sdk' in sys.modules)\n"
    )
    # When a handler wrapped by lambda_entry is invoked
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    # Then the X-Ray SDK was never imported
    assert out.strip().splitlines()[-1] == "False"
