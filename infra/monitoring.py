"""Alarms (to the alerts topic) and a dashboard an operator opens first."""

from __future__ import annotations

from typing import Dict

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from constructs import Construct

from datadominion import telemetry
from datadominion.config import Expectations, Maintenance
from infra.environment import EnvironmentConfig
from infra.functions import LauncherFunctions
from infra.workflow import Workflow


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env: EnvironmentConfig, workflow: Workflow,
                 functions: LauncherFunctions, maintenance: Maintenance, expectations: Expectations) -> None:
        super().__init__(scope, construct_id)
        dimensions: Dict[str, str] = {"service": telemetry.SERVICE, telemetry.ENVIRONMENT_DIMENSION: env.name}

        def metric(name: str, statistic: str = "Sum", minutes: int = 5) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace=telemetry.NAMESPACE, metric_name=name, dimensions_map=dimensions,
                                     statistic=statistic, period=cdk.Duration.minutes(minutes))

        sm = workflow.state_machine
        self.alarms = {
            "ExecutionFailed": sm.metric_failed(period=cdk.Duration.minutes(5)).create_alarm(
                self, "ExecutionFailed", threshold=1, evaluation_periods=1,
                alarm_description="A state machine execution failed: see the notification, the ledger and "
                                  "docs/runbook.md#execution-failed",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            "JobRunFailed": metric(telemetry.JOB_RUNS_FAILED).create_alarm(
                self, "JobRunFailed", threshold=1, evaluation_periods=1,
                alarm_description="A summary job run failed: docs/runbook.md#job-run-failed",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            "BatchesRejected": metric(telemetry.BATCHES_REJECTED).create_alarm(
                self, "BatchesRejected", threshold=env.alarms.rejected_batches_threshold, evaluation_periods=1,
                alarm_description="Landed batches were rejected: docs/runbook.md#batches-rejected",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            "IncompleteBatches": metric(telemetry.INCOMPLETE_BATCHES, "Maximum", minutes=60).create_alarm(
                self, "IncompleteBatches", threshold=1, evaluation_periods=1,
                alarm_description="A batch folder has held data without a _SUCCESS marker for longer than "
                                  "landing.incomplete_after_hours: docs/runbook.md#incomplete-batches",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            "MonthOverdue": metric(telemetry.MONTH_OVERDUE, "Maximum", minutes=60).create_alarm(
                self, "MonthOverdue", threshold=1, evaluation_periods=1,
                alarm_description=f"A month is not summarised by day {expectations.month_due_day} of the month "
                                  "after it: docs/runbook.md#freshness",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            "AccountDropPct": metric(telemetry.ACCOUNT_DROP_PCT, "Maximum", minutes=60).create_alarm(
                self, "AccountDropPct", threshold=expectations.max_account_drop_pct, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                alarm_description=f"A recent month has over {expectations.max_account_drop_pct:g}% fewer accounts "
                                  "than the month before: docs/runbook.md#freshness",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            "LockHeldTooLong": metric(telemetry.LOCK_HELD_SECONDS, "Maximum").create_alarm(
                self, "LockHeldTooLong", threshold=env.alarms.lock_held_minutes * 60, evaluation_periods=1,
                alarm_description="One run has held the lock longer than expected: docs/runbook.md#lock-held-too-long",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
        }
        for table in telemetry.HEALTH_TABLES:  # maintenance is not keeping up (docs/runbook.md#tables-unhealthy)
            for name, limit in ((telemetry.table_delete_files(table), maintenance.max_delete_files),
                                (telemetry.table_snapshots(table), maintenance.max_snapshots)):
                self.alarms[name] = metric(name, "Maximum", minutes=60).create_alarm(
                    self, name, threshold=2 * limit, evaluation_periods=3,
                    alarm_description=f"{table} keeps growing past twice the maintenance threshold ({limit}): "
                                      "maintenance is failing or not scheduled: docs/runbook.md#tables-unhealthy",
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
        for alarm in self.alarms.values():
            alarm.add_alarm_action(actions.SnsAction(workflow.topic))

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"DataDominion-{env.name}")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Executions", left=[sm.metric_started(), sm.metric_succeeded(),
                                                             sm.metric_failed()]),
            cloudwatch.GraphWidget(title="Batches", left=[metric(m) for m in (
                telemetry.BATCHES_REGISTERED, telemetry.BATCHES_REJECTED, telemetry.DUPLICATE_EVENTS)]),
            cloudwatch.GraphWidget(title="Job runs", left=[metric(m) for m in (
                telemetry.JOB_RUNS_SUCCEEDED, telemetry.JOB_RUNS_FAILED, telemetry.JOB_RUNS_REJECTED_BATCH)]),
            cloudwatch.GraphWidget(title="Lock", left=[metric(telemetry.LOCK_WAITS)],
                                   right=[metric(telemetry.LOCK_HELD_SECONDS, "Maximum")]),
            cloudwatch.GraphWidget(title="Table health (delete files, snapshots)", left=[
                metric(telemetry.table_delete_files(t), "Maximum", 60) for t in telemetry.HEALTH_TABLES], right=[
                metric(telemetry.table_snapshots(t), "Maximum", 60) for t in telemetry.HEALTH_TABLES]),
            cloudwatch.GraphWidget(title="Lambda errors", left=[fn.metric_errors() for fn in functions.all]),
        )
