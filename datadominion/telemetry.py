"""Names shared by what emits telemetry (the Lambdas) and what reads it (alarms, dashboard):
the Powertools service and metrics namespace, the environment dimension and every metric."""

from __future__ import annotations

SERVICE = "datadominion"
NAMESPACE = "DataDominion"
ENVIRONMENT_DIMENSION = "environment"

BATCHES_REGISTERED = "BatchesRegistered"
BATCHES_REJECTED = "BatchesRejected"
BATCHES_PARKED = "BatchesParked"
INCOMPLETE_BATCHES = "IncompleteBatches"
MONTH_OVERDUE = "MonthOverdue"
ACCOUNT_DROP_PCT = "AccountDropPct"
DUPLICATE_EVENTS = "DuplicateEvents"
LOCK_HELD_SECONDS = "LockHeldSeconds"
LOCK_WAITS = "LockWaits"
JOB_RUNS_SUCCEEDED = "JobRunsSucceeded"
JOB_RUNS_FAILED = "JobRunsFailed"
JOB_RUNS_REJECTED_BATCH = "JobRunsRejectedBatch"
RUNS_SUCCEEDED = "RunsSucceeded"
RUNS_FAILED = "RunsFailed"
AMENDED_ROWS = "AmendedRows"  # change records of the amended-history feed, per step
AMENDMENT_EVENTS_FAILED = "AmendmentEventsFailed"


def steps_planned(mode: str) -> str:
    return f"StepsPlanned_{mode}"


def step_usage(measure: str, mode: str) -> str:
    """e.g. vcpu_hours of a forward step -> StepVcpuHours_forward."""
    return "Step" + "".join(part.title() for part in measure.split("_")) + f"_{mode}"


# Table health, emitted by the Plan from Iceberg metadata; alarmed when maintenance does not keep up.
HEALTH_TABLES = ("summary", "latest_summary")


def table_delete_files(table: str) -> str:
    return f"DeleteFiles_{table}"


def table_snapshots(table: str) -> str:
    return f"Snapshots_{table}"
