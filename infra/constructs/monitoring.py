"""Alarms on the archiver's health, an SNS topic to hear about them, and a small dashboard."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from di_archiver.observability import METRICS_NAMESPACE, SERVICE_NAME, Metric

# Short enough to notice a failure within one run, long enough for one datapoint per run.
ALARM_PERIOD = Duration.minutes(15)


def archiver_metric(metric: Metric, *, statistic: str, period: Duration) -> cloudwatch.Metric:
    """A metric the runtime emits through Powertools (which adds the ``service`` dimension)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=str(metric),
        dimensions_map={"service": SERVICE_NAME},
        statistic=statistic,
        period=period,
    )


class Monitoring(Construct):
    """Alarms (all notify ``topic``) and the ``DIArchiver`` dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        schedule_period: Duration,
        missed_runs_periods: int,
        freshness_threshold_seconds: int,
        alarm_email: str | None,
        extra_functions: Mapping[str, lambda_.IFunction] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # An AWS-managed SNS key cannot grant CloudWatch publish rights; this key can.
        self.key = kms.Key(
            self,
            "TopicKey",
            description="di-archiver: alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(
            self, "Topic", master_key=self.key, enforce_ssl=True, display_name="di-archiver alarms"
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        def metric(name: Metric, statistic: str = "Sum") -> cloudwatch.Metric:
            return archiver_metric(name, statistic=statistic, period=ALARM_PERIOD)

        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._alarm(
            "FunctionErrors",
            function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            "The archiver function raised an error (see its log group).",
        )
        for name, extra in (extra_functions or {}).items():
            self._alarm(
                f"{name}FunctionErrors",
                extra.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
                f"The {name.lower()} function raised an error (see its log group).",
            )
        self._alarm(
            "RunFailed", metric(Metric.RUN_FAILED), "An archive run failed for at least one org."
        )
        self._alarm(
            "ApiErrors",
            metric(Metric.API_ERRORS),
            "The DI API refused requests (credential, permission or plan problem).",
        )
        self._alarm(
            "MaintenanceFailed",
            metric(Metric.MAINTENANCE_FAILED),
            "Sealing or reconciling a day failed.",
        )
        self._alarm(
            "ReconcileFindings",
            metric(Metric.RECONCILE_FINDINGS),
            "Reconcile left a day whose archive and DI counts disagree (still short, or DI "
            "counts fewer events than the archive holds).",
        )
        self._alarm(
            "VerifyFindings",
            metric(Metric.VERIFY_FINDINGS),
            "Verification found missing, extra or altered archive content.",
        )
        self._alarm(
            "DeadLetters",
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=ALARM_PERIOD, statistic="Maximum"
            ),
            "An invocation was dropped into the dead-letter queue.",
        )
        self._alarm(
            "Freshness",
            metric(Metric.FRESHNESS_LAG_SECONDS, "Maximum"),
            f"The archive lags more than {freshness_threshold_seconds} s behind now.",
            threshold=freshness_threshold_seconds,
        )
        self._alarm(
            "MissedRuns",
            archiver_metric(Metric.RUN_SUCCEEDED, statistic="Sum", period=schedule_period),
            f"No successful archive run for {missed_runs_periods} schedule periods.",
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            threshold=1,
            periods=missed_runs_periods,
            # No datapoints means no run reported success: exactly what this alarm is for.
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        self.dashboard = self._dashboard(function, dead_letter_queue)

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        threshold: float = 0,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        ),
        periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=missing,
            alarm_description=f"di-archiver: {description}",
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms[construct_id] = alarm

    def _dashboard(
        self, function: lambda_.IFunction, dead_letter_queue: sqs.IQueue
    ) -> cloudwatch.Dashboard:
        hour = Duration.hours(1)

        def graph(title: str, *metrics: cloudwatch.IMetric) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=8)

        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(alarms=list(self.alarms.values()), width=24)
        )
        dashboard.add_widgets(
            graph(
                "Freshness lag (s)",
                archiver_metric(Metric.FRESHNESS_LAG_SECONDS, statistic="Maximum", period=hour),
            ),
            graph(
                "Events written",
                archiver_metric(Metric.EVENTS_WRITTEN, statistic="Sum", period=hour),
            ),
            graph(
                "Bytes written", archiver_metric(Metric.BYTES_WRITTEN, statistic="Sum", period=hour)
            ),
        )
        dashboard.add_widgets(
            graph(
                "Runs",
                archiver_metric(Metric.RUN_SUCCEEDED, statistic="Sum", period=hour),
                archiver_metric(Metric.RUN_FAILED, statistic="Sum", period=hour),
            ),
            graph(
                "DI API",
                archiver_metric(Metric.API_RETRIES, statistic="Sum", period=hour),
                archiver_metric(Metric.API_ERRORS, statistic="Sum", period=hour),
            ),
            graph(
                "Function",
                function.metric_errors(period=hour),
                function.metric_throttles(period=hour),
                function.metric_duration(period=hour, statistic="Maximum"),
                dead_letter_queue.metric_approximate_number_of_messages_visible(period=hour),
            ),
        )
        return dashboard
