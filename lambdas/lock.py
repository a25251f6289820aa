"""Lock: take (or renew) the one-writer lock for this execution; contention is an outcome."""

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
    logger.set_correlation_id(str(event["owner"]))
    now = utc_now()
    result = run_tasks.acquire_lock(wiring.ledger(s), str(event["owner"]), now, s.policy)
    if result["held_since"]:  # how long the current holder has held it (the LockHeldTooLong alarm)
        held = (now - datetime.fromisoformat(result["held_since"])).total_seconds()
        metrics.add_metric(name="LockHeldSeconds", unit=MetricUnit.Seconds, value=max(held, 0.0))
    if not result["acquired"]:
        metrics.add_metric(name="LockWaits", unit=MetricUnit.Count, value=1)
        logger.info("lock held by another run; waiting", extra=result)
    return result
