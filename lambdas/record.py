"""Record: a finished (or failed) job run -> batch states in the ledger."""

from __future__ import annotations

from typing import Any, Dict

from aws_lambda_powertools.metrics import MetricUnit

from datadominion import change_feed, run_tasks, telemetry
from datadominion.ledger import DONE, REJECTED
from lambdas import wiring
from lambdas.observability import logger, metrics, task_handler
from lambdas.settings import LambdaSettings


@task_handler(lambda event: str(event["item"].get("step_id", "")))
def handler(event: Dict[str, Any], s: LambdaSettings) -> Dict[str, Any]:
    item = dict(event["item"])
    result = run_tasks.record(wiring.ledger(s), item, event.get("job"), event.get("error"), s.job,
                              wiring.read_text, wiring.now(), lambda run: wiring.dashboard_url(s, run),
                              landing=wiring.storage(s), usage=lambda run: wiring.job_run_usage(s, run))
    name = {DONE: telemetry.JOB_RUNS_SUCCEEDED, REJECTED: telemetry.JOB_RUNS_REJECTED_BATCH}.get(
        result["outcome"], telemetry.JOB_RUNS_FAILED)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    for name, value in result["usage"].items():  # cost by step kind (docs/runbook.md#cost-per-step)
        metrics.add_metric(name=telemetry.step_usage(name, result["mode"]), unit=MetricUnit.Count, value=value)
    announce_amendments(s, result)
    if result["rejected_count"]:
        metrics.add_metric(name=telemetry.BATCHES_REJECTED, unit=MetricUnit.Count, value=result["rejected_count"])
    log = logger.info if result["outcome"] == DONE else logger.error
    log("step recorded", extra={k: result[k] for k in ("outcome", "mode", "months", "job_run_id", "log_uri",
                                                       "batch_states", "detail", "cloudwatch_logs", "dashboard_url",
                                                       "usage")})
    return result


def announce_amendments(s: LambdaSettings, result: Dict[str, Any]) -> None:
    """One EventBridge event per step that changed rows readers may have seen."""
    event = change_feed.amendment_event(result["report"], result["step_id"], result["mode"], result["months"],
                                        s.environment)
    if event is None:
        return
    metrics.add_metric(name=telemetry.AMENDED_ROWS, unit=MetricUnit.Count, value=event["detail"]["records"])
    if not wiring.put_event(s, event):
        metrics.add_metric(name=telemetry.AMENDMENT_EVENTS_FAILED, unit=MetricUnit.Count, value=1)
        logger.error("amended-history event not delivered", extra={"event": event})
