"""Lock: take the one-writer lock for this execution (contention is an outcome), or, with
``renew``, extend it before a step and raise LockLost if another run took it over."""

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
    now = wiring.now()
    if event.get("renew"):
        return run_tasks.renew_lock(wiring.ledger(s), owner(event), now, s.policy)
    result = run_tasks.acquire_lock(wiring.ledger(s), owner(event), now, s.policy)
    if result["held_since"]:  # how long the current holder has held it (the LockHeldTooLong alarm)
        held = (now - datetime.fromisoformat(result["held_since"])).total_seconds()
        metrics.add_metric(name=telemetry.LOCK_HELD_SECONDS, unit=MetricUnit.Seconds, value=max(held, 0.0))
    if not result["acquired"]:
        metrics.add_metric(name=telemetry.LOCK_WAITS, unit=MetricUnit.Count, value=1)
        logger.info("lock held by another run; waiting", extra=result)
    return result
