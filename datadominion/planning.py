"""Classify pending months and order them into steps (pure: no I/O).

Labels come from the newest month already in summary (read from table metadata):
    initial   summary is empty: every pending month in one bulk step
    backfill  a month not newer than the newest summarised month
    forward   a month newer than it
Months are applied in ascending order: backfills (all older) first, then each forward
month. The label is a plan annotation and a performance hint; the engine decides per account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Tuple

from datadominion.ledger import BatchRecord
from datadominion.months import MonthError, month_of, parse_month
from datadominion.steps import Step, StepBatch

MAX_BACKFILL_MONTHS_PER_STEP = 12
MAX_RERUN_MONTHS = 120


class RunInputError(ValueError):
    """An execution input (console re-run, sweep, event) that cannot be used."""


@dataclass(frozen=True)
class RunRequest:
    kind: str  # "event" | "sweep" | "rerun"
    marker_key: str = ""
    rerun_months: Tuple[str, ...] = ()
    retry_failed: bool = False  # also retry batches parked after too many failed attempts


def parse_run_input(payload: object, now: datetime) -> RunRequest:
    """The three documented inputs: an S3 Object Created event, {"sweep": true} (with
    ``"retry_failed": true`` to also retry parked batches), or
    {"rerun": {"months": ["YYYY-MM", ...]}}."""
    if not isinstance(payload, dict):
        raise RunInputError(f"input must be a JSON object, got {type(payload).__name__}")
    if "rerun" in payload:
        rerun = payload["rerun"]
        months = rerun.get("months") if isinstance(rerun, dict) else None
        if not isinstance(months, list) or not months or not all(isinstance(m, str) for m in months):
            raise RunInputError('rerun input must look like {"rerun": {"months": ["2024-03", ...]}}')
        if len(set(months)) > MAX_RERUN_MONTHS:
            raise RunInputError(f"rerun names {len(set(months))} months; at most {MAX_RERUN_MONTHS} at a time")
        current = parse_month(month_of(now.date()))
        for month in months:
            try:
                index = parse_month(month)
            except MonthError as exc:
                raise RunInputError(f"rerun month {month!r}: {exc}") from exc
            if index > current:
                raise RunInputError(f"rerun month {month!r} is in the future")
        return RunRequest("rerun", rerun_months=tuple(sorted(set(months))))
    if payload.get("sweep") is True:
        retry = payload.get("retry_failed", False)
        if not isinstance(retry, bool):
            raise RunInputError(f'"retry_failed" must be true or false, got {retry!r}')
        return RunRequest("sweep", retry_failed=retry)
    detail = payload.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("object"), dict) and "key" in detail["object"]:
        return RunRequest("event", marker_key=str(detail["object"]["key"]))
    raise RunInputError(
        'unrecognised input: expected an S3 "Object Created" event, {"sweep": true} '
        'or {"rerun": {"months": ["YYYY-MM", ...]}}'
    )


def _step_batches(records: Sequence[BatchRecord]) -> Tuple[StepBatch, ...]:
    return tuple(StepBatch(r.month, r.batch_id, r.location) for r in sorted(records, key=lambda r: r.batch_key))


def plan_steps(
    pending: Sequence[BatchRecord],
    newest_summarised: Optional[str],
    run_id: str = "manual",
    rerun_months: Sequence[str] = (),
    max_backfill_months: int = MAX_BACKFILL_MONTHS_PER_STEP,
) -> List[Step]:
    steps: List[Step] = []
    if rerun_months:
        steps.append(Step("rerun", tuple(sorted(set(rerun_months))), (), run_id,
                          notes=("operator re-run: recompute from accounts_all",)))
    by_month: Dict[str, List[BatchRecord]] = {}
    for record in pending:
        by_month.setdefault(record.month, []).append(record)
    months = sorted(by_month)
    if not months:
        return steps
    if newest_summarised is None:
        batches = _step_batches([r for m in months for r in by_month[m]])
        note = f"summary is empty: initial load of {len(months)} month(s) {months[0]}..{months[-1]} in one pass"
        return steps + [Step("initial", tuple(months), batches, run_id, notes=(note,))]
    older = [m for m in months if m <= newest_summarised]
    newer = [m for m in months if m > newest_summarised]
    for start in range(0, len(older), max_backfill_months):
        chunk = older[start:start + max_backfill_months]
        note = f"{', '.join(chunk)} not newer than the newest summarised month {newest_summarised}: backfill"
        steps.append(Step("backfill", tuple(chunk), _step_batches([r for m in chunk for r in by_month[m]]),
                          run_id, notes=(note,)))
    for month in newer:
        note = f"{month} is newer than the newest summarised month {newest_summarised}: forward"
        steps.append(Step("forward", (month,), _step_batches(by_month[month]), run_id, notes=(note,)))
        newest_summarised = month
    return steps
