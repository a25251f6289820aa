"""Plan preview (pure): what a run would do, without locking or writing anything — the
ordered steps, their batches, the blast radius of each (accounts and summary rows it would
rewrite, estimated from batch sizes and table metadata, never a data scan) and an expected
duration and cost from the step history in the ledger. docs/architecture.md, "Plan preview"."""

from __future__ import annotations

from statistics import median
from typing import Any, Dict, List, Optional, Sequence

from datadominion.ledger import DONE, BatchRecord, StepRecord
from datadominion.months import format_month, parse_month
from datadominion.planning import plan_steps
from datadominion.steps import Step

# Bytes of landed Parquet per record before accounts_all has any (an estimate's fallback).
DEFAULT_BYTES_PER_RECORD = 60.0


def preview(pending: Sequence[BatchRecord], newest_summarised: Optional[str], rows_by_month: Dict[str, int],
            bytes_per_record: float, history: Sequence[StepRecord], history_length: int,
            rerun_months: Sequence[str] = (), maintain_reasons: Sequence[str] = ()) -> List[Dict[str, Any]]:
    steps = plan_steps(pending, newest_summarised, "preview", rerun_months, maintain_reasons=maintain_reasons)
    sizes = {r.batch_key: r.manifest.total_bytes for r in pending}
    newest = max([newest_summarised or ""] + [s.months[-1] for s in steps])
    return [_describe(step, sizes, rows_by_month, bytes_per_record, history, history_length, newest)
            for step in steps]


def _describe(step: Step, sizes: Dict[str, int], rows_by_month: Dict[str, int], bytes_per_record: float,
              history: Sequence[StepRecord], history_length: int, newest: str) -> Dict[str, Any]:
    if step.mode == "rerun":
        accounts = sum(rows_by_month.get(m, 0) for m in step.months)
    else:
        accounts = round(sum(sizes.get(b.batch_key, 0) for b in step.batches) / max(bytes_per_record, 1.0))
    return {"mode": step.mode, "months": list(step.months), "batches": [b.batch_key for b in step.batches],
            "notes": list(step.notes), "accounts_estimate": accounts,
            "summary_rows_estimate": accounts * _rows_per_account(step, history_length, newest),
            "rewrites_months": _months_rewritten(step, history_length, newest), **_expected(step.mode, history)}


def _rows_per_account(step: Step, history_length: int, newest: str) -> int:
    """A forward or initial record writes one row; a record for month M rewrites its
    account's rows M..M+35 that exist (up to the newest month); maintenance changes none."""
    if step.mode == "maintain":
        return 0
    if step.mode in ("forward", "initial"):
        return 1
    return min(history_length, parse_month(newest) - parse_month(step.months[0]) + 1)


def _months_rewritten(step: Step, history_length: int, newest: str) -> str:
    if step.mode not in ("backfill", "rerun"):
        return ""
    last = min(parse_month(step.months[-1]) + history_length - 1, parse_month(newest))
    return f"{step.months[0]}..{format_month(last)}"


def _expected(mode: str, history: Sequence[StepRecord]) -> Dict[str, Any]:
    """The median wall time and usage of this mode's past successful steps."""
    past = [s.usage for s in history if s.mode == mode and s.outcome == DONE and s.usage]
    if not past:
        return {"expected": "no history for this kind of step yet"}
    keys = sorted({k for usage in past for k in usage})
    return {"expected": {k: round(median(u[k] for u in past if k in u), 3) for k in keys}, "history_steps": len(past)}
