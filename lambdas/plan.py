"""Plan: pending batches + the summary table's newest month (Iceberg metadata) -> ordered steps."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict

from aws_lambda_powertools.metrics import MetricUnit

from datadominion import run_tasks, telemetry
from datadominion.freshness import check_freshness
from datadominion.maintenance import maintenance_reasons
from lambdas import wiring
from lambdas.observability import logger, metrics, owner, task_handler, tracer
from lambdas.settings import LambdaSettings


@task_handler(owner)
def handler(event: Dict[str, Any], s: LambdaSettings) -> Dict[str, Any]:
    if event.get("preview"):
        return _preview(event, s)
    now = wiring.now()
    with tracer.provider.in_subsegment("table_metadata"):
        glue = wiring.catalog(s)
        rows = wiring.summary_rows_per_month(s, glue)
        healths = wiring.table_healths(s, glue, len(rows))
    months = sorted(rows)
    fresh = check_freshness(rows, now.date(), s.expectations.month_due_day, s.expectations.max_account_drop_pct)
    metrics.add_metric(name=telemetry.MONTH_OVERDUE, unit=MetricUnit.Count, value=1 if fresh.overdue_month else 0)
    metrics.add_metric(name=telemetry.ACCOUNT_DROP_PCT, unit=MetricUnit.Percent, value=fresh.worst_drop_pct)
    for problem in fresh.problems:
        logger.warning(problem, extra={"freshness": True})
    maintain = (["requested by the operator"] if event.get("maintain") else []) + maintenance_reasons(
        healths, s.maintenance, now)
    for health in healths:
        metrics.add_metric(name=telemetry.table_delete_files(health.name), unit=MetricUnit.Count,
                           value=health.delete_files)
        metrics.add_metric(name=telemetry.table_snapshots(health.name), unit=MetricUnit.Count, value=health.snapshots)
    newest = months[-1] if months else None
    result = run_tasks.plan(wiring.ledger(s), owner(event), now, newest_summarised=newest, settings=s.job,
                            policy=s.policy, write_text=wiring.write_text,
                            rerun_months=list(event.get("rerun_months") or []),
                            retry_failed=bool(event.get("retry_failed", False)), maintain_reasons=maintain)
    if result["parked"]:
        metrics.add_metric(name=telemetry.BATCHES_PARKED, unit=MetricUnit.Count, value=result["parked_count"])
        logger.warning("batches parked after repeated failures; start {\"sweep\": true, \"retry_failed\": true} "
                       "once the cause is fixed", extra={"parked": result["parked"]})
    for mode, count in Counter(result["modes"]).items():
        metrics.add_metric(name=telemetry.steps_planned(mode), unit=MetricUnit.Count, value=count)
    logger.info("plan", extra={"newest_summarised": newest, "maintenance": maintain,
                               "deferred_to_next_plan": result["deferred"], "steps": [
        {"mode": i["mode"], "months": i["months"], "attempt": i["attempt"],
         "client_token": i["request"]["ClientToken"]} for i in result["steps"]]})
    return result


def _preview(event: Dict[str, Any], s: LambdaSettings) -> Dict[str, Any]:
    """{"plan_only": true}: what the run would do; no lock, nothing written (datadominion/preview.py)."""
    glue = wiring.catalog(s)
    rows = wiring.summary_rows_per_month(s, glue)
    maintain = (["requested by the operator"] if event.get("maintain") else []) + maintenance_reasons(
        wiring.table_healths(s, glue, len(rows)), s.maintenance, wiring.now())
    result = run_tasks.preview(wiring.ledger(s), rows_by_month=rows,
                               bytes_per_record=wiring.source_bytes_per_record(s, glue),
                               policy=s.policy, history_length=s.history_length,
                               rerun_months=list(event.get("rerun_months") or []),
                               retry_failed=bool(event.get("retry_failed", False)), maintain_reasons=maintain)
    logger.info("plan preview", extra={"steps": result["steps"]})
    return result
