"""The Lambda entry point: parse the event, run one use case, emit and return its report.

A failure re-raises after logging and a ``RunFailed`` metric, so the asynchronous invocation is
retried, lands in the DLQ, and the Errors alarm fires.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from di_archiver import application as app
from di_archiver import telemetry
from di_archiver.errors import IntegrityError, SettingsError
from di_archiver.invocation import Invocation, parse_invocation
from di_archiver.observability import Mode
from di_archiver.settings import ArchiverSettings, Duty
from di_archiver.wiring import build_org_queue, build_runtime, build_verifier

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


def runtime_factory(settings: ArchiverSettings, observer: telemetry.MetricsObserver) -> app.Runtime:
    """The run's ports (tests replace this with a fake or simulator-backed runtime)."""
    return build_runtime(settings, observer=observer)


def _default_queue(settings: ArchiverSettings) -> app.OrgQueue | None:
    return build_org_queue(settings)


# Tests replace this to inject a queue (moto or a list).
queue_factory = _default_queue
# The dispatch slot's clock (tests pin it so two dispatches share a slot).
clock: Callable[[], int] = time.time_ns


@cache
def get_settings() -> ArchiverSettings:
    """Settings from the environment, read once per container."""
    return ArchiverSettings.from_env(os.environ)


def reset_for_tests() -> None:
    get_settings.cache_clear()


# Each deployed function has one duty, and IAM lets its role do exactly that: a mode outside
# the duty is refused before anything is built, with a message naming the right function.
DUTY_MODES: dict[Duty, frozenset[Mode]] = {
    Duty.ALL: frozenset(Mode),
    Duty.ARCHIVE: frozenset({Mode.ARCHIVE, Mode.RESNAPSHOT, Mode.RECONCILE, Mode.DISPATCH}),
    Duty.SEAL: frozenset({Mode.MAINTAIN}),
    Duty.VERIFY: frozenset({Mode.VERIFY}),
}


def check_duty(call: Invocation, settings: ArchiverSettings) -> None:
    """Refuse a mode this function's role may not run."""
    if call.mode not in DUTY_MODES[settings.duty]:
        allowed = ", ".join(sorted(m.value for m in DUTY_MODES[settings.duty]))
        raise SettingsError(
            f"mode {call.mode.value!r} does not run on the {settings.duty.value} function "
            f"(it runs: {allowed}); invoke the function whose role does it"
        )


def run_use_case(
    call: Invocation,
    settings: ArchiverSettings,
    runtime: app.Runtime,
    remaining: Callable[[], float],
) -> dict[str, Any]:
    """Call the one use case the invocation names (its duty already checked by ``handle``),
    emit its report, return its summary."""
    if call.mode is Mode.ARCHIVE and call.org_id is not None:
        queue = queue_factory(settings)
        return app.archive_org(
            settings, runtime, call.org_id, queue=queue, remaining_seconds=remaining
        ).summary()
    if call.mode is Mode.RECONCILE:
        reconciled = app.maintain(
            settings, runtime.maintenance_ports, seal=False, remaining_seconds=remaining
        )
        telemetry.emit_maintenance(reconciled)
        reconciled.raise_for_failures()
        return {**app.maintenance_summary(reconciled), "mode": Mode.RECONCILE.value}
    if call.mode is Mode.ARCHIVE:
        return app.archive(settings, runtime, remaining_seconds=remaining).summary()
    if call.mode is Mode.RESNAPSHOT:
        start, end = call.window_ns
        return app.resnapshot(
            settings,
            runtime,
            start_ns=start,
            end_ns=end,
            org_id=call.org_id,
            remaining_seconds=remaining,
        ).summary()
    if call.mode is Mode.MAINTAIN:
        if runtime.signer is not None:
            from di_archiver.adapters.heads import LogHeadPublisher  # noqa: PLC0415

            # Besides EventBridge: the function may write its log group, never delete from it.
            runtime.publishers.append(LogHeadPublisher(telemetry.powertools()[0].info))
        maintained = app.maintain(settings, runtime.maintenance_ports, remaining_seconds=remaining)
        telemetry.emit_maintenance(maintained)
        maintained.raise_for_failures()
        # A day still short after the repair must alarm, not pass as a successful run.
        maintained.raise_for_findings()
        return app.maintenance_summary(maintained)
    verified = app.verify(
        runtime.store,
        prefix=settings.archive_prefix,
        org_ids=settings.org_ids,
        last_days=call.days,
        verifier=build_verifier(settings),
    )
    telemetry.emit_verify(verified)
    if not verified.ok:
        raise IntegrityError(f"verify found {len(verified.findings)} problem(s); see the log")
    return app.verify_summary(verified, mask=telemetry.mask_org_id)


def handle(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Undecorated handler body (the decorated ``lambda_handler`` wraps this)."""
    observer, runtime, freshness = telemetry.MetricsObserver(), None, False
    try:
        settings = get_settings()
        invocation = parse_invocation(event)
        check_duty(invocation, settings)
        freshness = invocation.reports_freshness
        if invocation.mode is Mode.DISPATCH:
            # Needs neither the credential nor the archive: only the queue.
            return _dispatch(settings)
        runtime = runtime_factory(settings, observer)
        remaining = lambda: context.get_remaining_time_in_millis() / 1000.0  # noqa: E731
        summary = run_use_case(invocation, settings, runtime, remaining)
    except Exception as exc:
        retries = runtime.api_stats()[0] if runtime is not None else 0
        observer.failed(exc, api_retries=retries, freshness=freshness)
        raise
    finally:
        if runtime is not None:
            runtime.close()
    observer.succeeded(summary, api_retries=runtime.api_stats()[0], freshness=freshness)
    return summary


def _dispatch(settings: ArchiverSettings) -> dict[str, Any]:
    queue = queue_factory(settings)
    if queue is None:
        raise SettingsError(
            "dispatch needs the fan-out work queue: set DI_ARCHIVER_ORG_QUEUE_URL (the stack "
            "does when fanOut is configured)"
        )
    report = app.dispatch(settings, queue, now_ns=clock())
    telemetry.emit_dispatch(report)
    return report.summary()


# AWS Lambda entry point (``di_archiver.handler.lambda_handler``).
lambda_handler = telemetry.lambda_entry(handle)


__all__ = ["Invocation", "lambda_handler", "reset_for_tests"]
