"""Register: the execution input (S3 Object Created event, sweep or rerun) -> ledger records."""

from __future__ import annotations

from typing import Any, Dict
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from datadominion import run_tasks, telemetry
from datadominion.run_input import RunInputError
from lambdas import wiring
from lambdas.observability import logger, metrics, task_handler
from lambdas.settings import LambdaSettings


def _payload(event: Dict[str, Any], landing_bucket: str) -> Dict[str, Any]:
    """An S3 event goes through Powertools' parser model; sweep/rerun inputs pass as they are."""
    if "detail-type" not in event:
        return event
    parsed = parse(event=event, model=S3EventNotificationEventBridgeModel)
    if parsed.detail.bucket.name != landing_bucket:
        raise RunInputError(f"event for bucket {parsed.detail.bucket.name!r}, not the landing bucket "
                            f"{landing_bucket!r}")
    # S3 URL-encodes keys in notifications; landing keys never contain '+' or '%' themselves.
    return {"detail": {"object": {"key": unquote_plus(parsed.detail.object.key)}}}


@task_handler(log_event=False)  # the batch id becomes the correlation id once parsed
def handler(event: Dict[str, Any], s: LambdaSettings) -> Dict[str, Any]:
    payload = _payload(dict(event.get("input", event)), s.landing_bucket)
    key = (payload.get("detail") or {}).get("object", {}).get("key", "")
    if key:
        logger.set_correlation_id(key.rsplit("/", 2)[-2] if key.count("/") >= 2 else key)
    result = run_tasks.register(payload, wiring.storage(s), wiring.ledger(s), wiring.now(), s.policy,
                                wiring.manifests(s))
    metrics.add_metric(name=telemetry.BATCHES_REGISTERED, unit=MetricUnit.Count, value=result["registered_count"])
    metrics.add_metric(name=telemetry.BATCHES_REJECTED, unit=MetricUnit.Count, value=result["rejected_count"])
    metrics.add_metric(name=telemetry.DUPLICATE_EVENTS, unit=MetricUnit.Count, value=result["duplicate_count"])
    if result["kind"] == "sweep":  # only the sweep lists the whole landing area
        metrics.add_metric(name=telemetry.INCOMPLETE_BATCHES, unit=MetricUnit.Count, value=result["incomplete_count"])
    if result["incomplete"]:
        logger.warning("batch folders with data but no _SUCCESS", extra={"incomplete": result["incomplete"]})
    for batch_key, reason in result["rejected"].items():
        logger.warning("batch rejected", extra={"batch_key": batch_key, "reason": reason})
    logger.info("registration", extra={k: result[k] for k in ("kind", "registered", "registered_count",
                                                              "duplicate_count", "rejected_count", "proceed")})
    return result
