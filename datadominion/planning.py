"""Classify pending months and order them into steps (pure: no I/O).

Labels come from the newest month already in summary (read from table metadata):
    initial   summary is empty: every pending month in one bulk step
    backfill  a month not newer than the newest summarised month
    forward   a month newer than it
Months are applied in ascending order: backfills (all older) first, then each forward
month. Backfill months are grouped up to 12 a step, or any number while their batches are
small together. The label is a plan annotation and a performance hint; the engine
decides per account.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from datadominion.ledger import BatchRecord
from datadominion.steps import Step, StepBatch

MAX_BACKFILL_MONTHS_PER_STEP = 12
# Backfill batches this small together make one step whatever their months: a step's fixed
# cost (planning, commits, checks: seconds) dwarfs the work of a few late records, and the
# engine reads only the named accounts' windows (docs/architecture.md, "Planning").
SMALL_BACKFILL_BYTES = 64 * 2**20


def _step_batches(records: Sequence[BatchRecord]) -> Tuple[StepBatch, ...]:
    return tuple(StepBatch(r.month, r.batch_id, r.location) for r in sorted(records, key=lambda r: r.batch_key))


def plan_steps(
    pending: Sequence[BatchRecord],
    newest_summarised: Optional[str],
    run_id: str = "manual",
    rerun_months: Sequence[str] = (),
    max_backfill_months: int = MAX_BACKFILL_MONTHS_PER_STEP,
    maintain_reasons: Sequence[str] = (),
) -> List[Step]:
    """The steps, in order; a maintenance step (when ``maintain_reasons`` says it is due) goes
    last, after everything that writes data, under the same lock."""
    steps = _data_steps(pending, newest_summarised, run_id, rerun_months, max_backfill_months)
    newest = max([newest_summarised or ""] + [s.months[-1] for s in steps if s.mode != "rerun"])
    if maintain_reasons and newest:
        steps.append(Step("maintain", (newest,), (), run_id, notes=tuple(maintain_reasons)))
    return steps


def _data_steps(pending: Sequence[BatchRecord], newest_summarised: Optional[str], run_id: str,
                rerun_months: Sequence[str], max_backfill_months: int) -> List[Step]:
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
    for chunk in backfill_chunks(older, by_month, max_backfill_months):
        note = f"{', '.join(chunk)} not newer than the newest summarised month {newest_summarised}: backfill"
        steps.append(Step("backfill", tuple(chunk), _step_batches([r for m in chunk for r in by_month[m]]),
                          run_id, notes=(note,)))
    for month in newer:
        note = f"{month} is newer than the newest summarised month {newest_summarised}: forward"
        steps.append(Step("forward", (month,), _step_batches(by_month[month]), run_id, notes=(note,)))
        newest_summarised = month
    return steps


def backfill_chunks(months: Sequence[str], by_month: Dict[str, List[BatchRecord]], max_months: int
                    ) -> List[List[str]]:
    """Consecutive backfill months grouped into steps: up to ``max_months`` each, and beyond
    that as long as the group's batches hold at most SMALL_BACKFILL_BYTES together. A batch
    registered without a manifest has no known size and counts as large."""
    chunks: List[List[str]] = []
    size = 0.0
    for month in months:
        month_bytes = _batch_bytes(by_month[month])
        if chunks and (len(chunks[-1]) < max_months or size + month_bytes <= SMALL_BACKFILL_BYTES):
            chunks[-1].append(month)
            size += month_bytes
        else:
            chunks.append([month])
            size = month_bytes
    return chunks


def _batch_bytes(records: Sequence[BatchRecord]) -> float:
    return sum(r.manifest.total_bytes if r.manifest.count else float("inf") for r in records)
