"""The maintenance step (docs/architecture.md, "Maintenance"): compaction, manifest
rewrites, snapshot expiry and orphan removal, planned by the writer and run under the same
single-writer lock as every MERGE, so it never races one.

summary and latest_summary are maintained fully. accounts_all only gets its manifests
rewritten: it is append-only (no delete files, no rewritten data), and its snapshot
summaries carry the batch markers that make ingest idempotent, so none is ever expired.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

from datadominion.config import Maintenance
from datadominion.maintenance import MAINTAINED_AT_PROPERTY
from emr_jobs.tables import Tables


@dataclass(frozen=True)
class TableStats:
    """From the current snapshot's summary and the snapshot list: no data file is read."""

    data_files: int
    delete_files: int
    bytes: int
    snapshots: int


@dataclass(frozen=True)
class TableMaintenance:
    before: TableStats
    after: TableStats
    rewritten_data_files: int = 0
    added_data_files: int = 0
    rewritten_delete_files: int = 0
    expired_files: int = 0
    orphan_files: int = 0


def table_stats(spark: Any, table: str) -> Optional[TableStats]:
    head = spark.sql(f"SELECT s.summary FROM {table}.refs r JOIN {table}.snapshots s USING (snapshot_id) "
                     "WHERE r.name = 'main'").collect()
    if not head:
        return None
    summary = head[0][0] or {}
    count = spark.sql(f"SELECT count(*) FROM {table}.snapshots").first()[0]
    return TableStats(int(summary.get("total-data-files", 0)), int(summary.get("total-delete-files", 0)),
                      int(summary.get("total-files-size", 0)), int(count))


def _call(spark: Any, tables: Tables, procedure: str, table: str, **args: str) -> List[Any]:
    """One Iceberg procedure on ``table``, by named arguments; its output rows."""
    named = [f"table => '{table.removeprefix(tables.catalog + '.')}'"] + [f"{k} => {v}" for k, v in args.items()]
    return list(spark.sql(f"CALL {tables.catalog}.system.{procedure}({', '.join(named)})").collect())


def _totals(rows: List[Any]) -> Dict[str, int]:
    totals: Dict[str, int] = {}
    for row in rows:
        for name, value in row.asDict().items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
    return totals


def _options(**values: Any) -> str:
    return "map(" + ", ".join(f"'{k}', '{v}'" for k, v in values.items()) + ")"


def maintain_table(spark: Any, tables: Tables, table: str, settings: Maintenance, now: datetime
                   ) -> Optional[TableMaintenance]:
    before = table_stats(spark, table)
    if before is None:  # no snapshot yet
        return None
    # The rewritten files take the new snapshot's sequence number (not the starting one), so
    # every older delete file stops applying and is removed as dangling. Safe only because no
    # other writer commits meanwhile: the single-writer lock.
    data = _totals(_call(spark, tables, "rewrite_data_files", table, options=_options(**{
        "delete-file-threshold": settings.delete_file_threshold, "min-input-files": settings.min_input_files,
        "remove-dangling-deletes": "true", "partial-progress.enabled": "true",
        "use-starting-sequence-number": "false"})))
    deletes = _totals(_call(spark, tables, "rewrite_position_delete_files", table,
                            options=_options(**{"min-input-files": settings.min_input_files})))
    _call(spark, tables, "rewrite_manifests", table)
    expired = _totals(_call(spark, tables, "expire_snapshots", table, retain_last="1",
                            older_than=_timestamp(now - timedelta(days=settings.snapshot_retention_days))))
    # Iceberg refuses an orphan cutoff less than a day before the wall clock (a file being
    # written right now looks orphaned): never later than that, whatever ``now`` says.
    wall = datetime.now(timezone.utc)
    orphans = _call(spark, tables, "remove_orphan_files", table,
                    older_than=_timestamp(min(now, wall) - timedelta(days=settings.orphan_age_days)))
    after = table_stats(spark, table)
    assert after is not None
    return TableMaintenance(
        before, after, rewritten_data_files=data.get("rewritten_data_files_count", 0),
        added_data_files=data.get("added_data_files_count", 0),
        rewritten_delete_files=deletes.get("rewritten_delete_files_count", 0)
        + data.get("removed_delete_files_count", 0),
        expired_files=sum(v for k, v in expired.items() if k.startswith("deleted_")), orphan_files=len(orphans))


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')}'"


def maintain(spark: Any, tables: Tables, now: datetime) -> Dict[str, Any]:
    """Maintain every table; returns, per table, what was rewritten and the stats before/after."""
    settings = tables.config.maintenance
    report: Dict[str, Any] = {}
    for table in (tables.summary, tables.latest_summary):
        done = maintain_table(spark, tables, table, settings, now)
        if done is not None:
            report[table.rsplit(".", 1)[1]] = asdict(done)
            # What the Plan's schedule reads (datadominion/maintenance.py).
            # After its own commits, so they do not count as a change since.
            done_at = max(now, datetime.now(timezone.utc)).isoformat()
            spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('{MAINTAINED_AT_PROPERTY}'='{done_at}')")
    if table_stats(spark, tables.accounts_all) is not None:
        _call(spark, tables, "rewrite_manifests", tables.accounts_all)
    return report
