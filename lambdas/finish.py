"""Finish: release the lock at the end of a run; on the failure path, re-queue what the run
started but never finished and return the message for the notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from datadominion import run_tasks
from datadominion.launcher import utc_now
from lambdas import wiring
from lambdas.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Dict[str, Any], context: LambdaContext) -> Dict[str, Any]:
    s = wiring.settings()
    metrics.add_dimension(name="environment", value=s.environment)
    owner = str(event["owner"])
    logger.set_correlation_id(owner)
    started = datetime.fromisoformat(str(event.get("started") or utc_now().isoformat()).replace("Z", "+00:00"))
    if event.get("error") is not None:
        result = run_tasks.fail(wiring.ledger(s), owner, dict(event["error"]), started, utc_now())
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
        logger.error("run failed", extra={"failed": result["failed"], "requeued": result["requeued"],
                                          "notification": result["message"]})
        return result
    result = run_tasks.finish(wiring.ledger(s), owner, started, utc_now())
    metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=1)
    return result
