"""When the tables are due for maintenance (pure: the Plan and the local loop pass in what
they read from Iceberg metadata). docs/architecture.md, "Maintenance"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional, Sequence

from datadominion.config import Maintenance

MAINTAINED_AT_PROPERTY = "datadominion.maintained-at"
# A table still over a threshold right after maintenance (e.g. snapshots all inside the
# retention) must not be maintained again by every Plan: thresholds wait this long.
MIN_THRESHOLD_INTERVAL = timedelta(days=1)


@dataclass(frozen=True)
class TableHealth:
    """One table's state, from its metadata alone (no data file read)."""

    name: str
    data_files: int
    delete_files: int
    snapshots: int
    months: int  # partitions holding data (summary); 1 for latest_summary
    changed_at: Optional[datetime]  # the current snapshot's commit time (None: no data yet)
    created_at: Optional[datetime]  # the oldest snapshot's
    maintained_at: Optional[datetime]


def maintenance_reasons(tables: Sequence[TableHealth], settings: Maintenance, now: datetime) -> List[str]:
    """Why maintenance is due now (empty: it is not)."""
    reasons: List[str] = []
    for t in tables:
        if t.changed_at is None:  # no data yet
            continue
        recently = t.maintained_at is not None and now - t.maintained_at < MIN_THRESHOLD_INTERVAL
        if not recently:
            if t.delete_files > settings.max_delete_files:
                reasons.append(f"{t.name}: {t.delete_files} delete files > {settings.max_delete_files}")
            if t.data_files > settings.max_data_files_per_month * max(t.months, 1):
                reasons.append(f"{t.name}: {t.data_files} data files in {t.months} month(s) > "
                               f"{settings.max_data_files_per_month} per month")
            if t.snapshots > settings.max_snapshots:
                reasons.append(f"{t.name}: {t.snapshots} snapshots > {settings.max_snapshots}")
        since = t.maintained_at or t.created_at or t.changed_at
        if t.changed_at > since and now - since >= timedelta(days=settings.every_days):
            reasons.append(f"{t.name}: changed and not maintained for {settings.every_days} day(s)")
    return reasons
