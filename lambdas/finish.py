"""Finish: release the lock at the end of a run; on the failure path, re-queue what the run
started but never finished and return the message for the notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict

from aws_lambda_powertools.metrics import MetricUnit

from datadominion import run_tasks, telemetry
from lambdas import wiring
from lambdas.observability import logger, metrics, owner, task_handler
from lambdas.settings import LambdaSettings


@task_handler(owner)
def handler(event: Dict[str, Any], s: LambdaSettings) -> Dict[str, Any]:
    run = owner(event)
    started = datetime.fromisoformat(str(event.get("started") or wiring.now().isoformat()).replace("Z", "+00:00"))
    if event.get("release_only"):
        result = run_tasks.release_after_failure(wiring.ledger(s), run, dict(event.get("error") or {}))
        logger.error("recording the run's failure failed; lock released", extra={"notification": result["message"]})
        return result
    if event.get("error") is not None:
        result = run_tasks.fail(wiring.ledger(s), run, dict(event["error"]), started, wiring.now())
        metrics.add_metric(name=telemetry.RUNS_FAILED, unit=MetricUnit.Count, value=1)
        logger.error("run failed", extra={"failed": result["failed"], "requeued": result["requeued"],
                                          "notification": result["message"]})
        return result
    result = run_tasks.finish(wiring.ledger(s), run, started, wiring.now())
    metrics.add_metric(name=telemetry.RUNS_SUCCEEDED, unit=MetricUnit.Count, value=1)
    return result
