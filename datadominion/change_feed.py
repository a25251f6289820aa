"""Reading the amended-history feed (docs/architecture.md, "Amended-history feed"): which
summary rows the published steps changed since a time or a step, and the event a step's
change records announce.

The records are written by the summary job (emr_jobs/changes.py); this side only reads them
(pyiceberg, a plain table scan filtered on the partition column) and describes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence

from datadominion.ledger import StepRecord

EVENT_SOURCE = "datadominion"
EVENT_DETAIL_TYPE = "Summary history amended"


class SinceError(ValueError):
    """--since names neither a time nor a step the ledger knows."""


MIN_STEP_PREFIX = 8


def resolve_since(text: str, steps: Sequence[StepRecord]) -> datetime:
    """``text``: an ISO date or time (UTC when no offset is given) or a step id (or a unique
    prefix of at least 8 characters, as listings show them); a step stands for the moment it
    last finished, so only later steps' changes follow."""
    matches = [s for s in steps if len(text) >= MIN_STEP_PREFIX and s.step_id.startswith(text)]
    if len({s.step_id for s in matches}) > 1:
        raise SinceError(f"--since {text!r} is the start of several step ids; give more of it")
    if matches:
        return max(s.finished_at for s in matches)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SinceError(f"--since {text!r} is neither an ISO date/time (e.g. 2026-11-01 or "
                         f"2026-11-01T08:00:00+00:00) nor a step id in the ledger") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ChangeRecord:
    changed_at: datetime
    step_id: str
    step_mode: str
    account: int
    month: str
    kind: str
    causes: List[Dict[str, Any]]
    scalar_changes: List[Dict[str, Any]]
    history_changes: List[Dict[str, Any]]

    def causes_text(self) -> str:
        return ", ".join(f"{c['month']} {c['batch'] or '(batch unknown)'}" for c in self.causes)

    def changes_text(self) -> str:
        scalars = [f"{c['column']} {c['old']}->{c['new']}" for c in self.scalar_changes]
        history = [f"{h['column']}[{','.join(str(p) for p in h['positions'])}]" for h in self.history_changes]
        return "; ".join(scalars + history) or "-"


def read_changes(catalog: Any, identifier: str, since: datetime, key_column: str, month_column: str
                 ) -> List[ChangeRecord]:
    """Change records of steps that started at or after ``since``, oldest first."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        return []
    rows = table.scan(row_filter=f"changed_at >= '{since.isoformat()}'").to_arrow().to_pylist()
    records = [ChangeRecord(r["changed_at"], r["step_id"], r["step_mode"], r[key_column], r[month_column], r["kind"],
                            r["causes"] or [], r["scalar_changes"] or [], r["history_changes"] or []) for r in rows]
    return sorted(records, key=lambda c: (c.changed_at, c.step_id, c.account, c.month))


def amendment_event(report: Dict[str, Any], step_id: str, mode: str, months: Sequence[str],
                    environment: str = "") -> Optional[Dict[str, Any]]:
    """The one event a step with change records announces (None without any): counts by
    kind, the table and the snapshot that holds them."""
    changes = report.get("changes") or {}
    if not changes.get("records"):
        return None
    return {"source": EVENT_SOURCE, "detail_type": EVENT_DETAIL_TYPE, "detail": {
        "environment": environment, "step_id": step_id, "mode": mode, "months": list(months),
        "records": int(changes["records"]), "by_kind": dict(changes.get("by_kind") or {}),
        "table": changes.get("table", ""), "snapshot_id": changes.get("snapshot_id")}}


def describe_event(event: Dict[str, Any]) -> str:
    d = event["detail"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(d["by_kind"].items()))
    return (f"amended history: {d['records']} change record(s) ({kinds}) from step {d['step_id']} "
            f"in {d['table']} snapshot {d['snapshot_id']}")
