"""Table names, schemas and DDL of the four Iceberg tables, all derived from the pipeline config,
and the Iceberg table behind a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from datadominion.config import PipelineConfig
from datadominion.schema import SOURCE_BATCH_COLUMN, SPARK_SQL_TYPES

BATCHES_PROPERTY = "datadominion.batches"


def iceberg_table(spark: Any, name: str) -> Any:
    """The Iceberg (Java) table ``name`` names in this session's catalog, its metadata as now
    committed: what a step asks of a table's refs and snapshots costs no Spark job (a query of a
    metadata table is planned and run: ~55 ms against ~7 ms, a dozen times a step)."""
    return spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, name)


@dataclass(frozen=True)
class Tables:
    catalog: str
    config: PipelineConfig
    # Where a step writes and checks summary and latest_summary before publishing them
    # (emr_jobs/publish.py); None writes `main` directly.
    audit_branch: Optional[str] = None

    def written(self, table: str) -> str:
        """The identifier a step writes ``table`` through: its audit branch, else the table."""
        return f"{table}.branch_{self.audit_branch}" if self.audit_branch else table

    def _qualified(self, name: str) -> str:
        return f"{self.catalog}.{self.config.namespace}.{name}"

    @property
    def accounts_all(self) -> str:
        return self._qualified(self.config.source_table)

    @property
    def summary(self) -> str:
        return self._qualified(self.config.destination_table)

    @property
    def latest_summary(self) -> str:
        return self._qualified(self.config.latest_history_table)

    @property
    def changes(self) -> str:
        return self._qualified(self.config.changes_table)


def summary_columns(config: PipelineConfig) -> List[Tuple[str, str]]:
    """(name, Spark SQL type) of every summary / latest_summary column, in table order."""
    cols = [(name, SPARK_SQL_TYPES[kind]) for name, kind in config.summary_scalar_types.items()]
    cols += [(r.name, f"ARRAY<{SPARK_SQL_TYPES[config.rolling_type(r)]}>") for r in config.rolling_columns]
    cols += [(g.name, "STRING") for g in config.grid_columns]
    return cols


def summary_column_names(config: PipelineConfig) -> List[str]:
    return [name for name, _ in summary_columns(config)]


_COMMON_PROPERTIES = {
    "format-version": "2",
    "write.distribution-mode": "hash",
    "write.parquet.compression-codec": "zstd",
}
# Backfills rewrite a small share of rows spread over 36 partitions: merge-on-read writes
# delete files instead of rewriting whole data files (compaction is in the runbook).
_MERGE_ON_READ = {
    "write.merge.mode": "merge-on-read",
    "write.update.mode": "merge-on-read",
    "write.delete.mode": "merge-on-read",
}


# Summary is written in key order (WRITE ORDERED BY), so each Parquet row group holds a narrow
# key range, and a read that names its accounts (a small late batch: its window, its MERGE, its
# checks) decodes only the row groups whose key bounds can hold them. Smaller is not better: at
# 1M accounts locally a one-record step took 18.2-21.3 s with 128 MiB groups, 9.5-14.0 s with
# 8 MiB and 12.4-15.4 s with 1 MiB, whose per-group costs also made a 1% backfill that reads
# whole partitions half as slow again; at 8 MiB that backfill is about as fast as at 128 MiB
# (docs/benchmarks.md, twentieth). Local runs use production's size: ~64 groups in a 512 MB file (docs/scale.md,
# "Table layout"; docs/decisions.md, "Summary's row groups").
ROW_GROUP_PROPERTY = "write.parquet.row-group-size-bytes"
SUMMARY_ROW_GROUP_BYTES = 8 * 2**20


def change_columns(config: PipelineConfig) -> List[Tuple[str, str]]:
    """The amended-history feed (docs/architecture.md, "Amended-history feed"): one row per
    (account, month) a step changed that readers may already have seen."""
    key, month = config.key_column, config.month_column
    return [
        ("changed_at", "TIMESTAMP"), ("step_id", "STRING"), ("step_mode", "STRING"),
        (key, "BIGINT"), (month, "STRING"),
        ("kind", "STRING"),  # added | corrected | history
        ("causes", "ARRAY<STRUCT<month: STRING, batch: STRING, base_ts: TIMESTAMP>>"),
        ("scalar_changes", "ARRAY<STRUCT<column: STRING, old: STRING, new: STRING>>"),
        ("history_changes", "ARRAY<STRUCT<column: STRING, positions: ARRAY<INT>>>"),
    ]


def _properties(extra: dict) -> str:
    items = {**_COMMON_PROPERTIES, **extra}
    return ", ".join(f"'{k}'='{v}'" for k, v in items.items())


def create_tables(spark: Any, tables: Tables, latest_buckets: int = 16,
                  row_group_bytes: int = SUMMARY_ROW_GROUP_BYTES) -> None:
    """Create the namespace and the four tables if missing (safe to repeat); summary's row
    groups are kept at ``row_group_bytes``, on a table created before this setting too."""
    config = tables.config
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {tables.catalog}.{config.namespace}")
    source = ", ".join(f"{c.name} {SPARK_SQL_TYPES[c.type]}" for c in config.source_schema)
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.accounts_all} ({source}, {SOURCE_BATCH_COLUMN} STRING) USING iceberg "
        f"PARTITIONED BY ({config.month_column}) TBLPROPERTIES ({_properties({})})"
    )
    if SOURCE_BATCH_COLUMN not in spark.table(tables.accounts_all).columns:  # created before batches were kept
        spark.sql(f"ALTER TABLE {tables.accounts_all} ADD COLUMN {SOURCE_BATCH_COLUMN} STRING")
    summary = ", ".join(f"{n} {t}" for n, t in summary_columns(config))
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.summary} ({summary}) USING iceberg "
        f"PARTITIONED BY ({config.month_column}) TBLPROPERTIES ({_properties(_MERGE_ON_READ)})"
    )
    spark.sql(f"ALTER TABLE {tables.summary} WRITE ORDERED BY {config.key_column}")
    if iceberg_table(spark, tables.summary).properties().get(ROW_GROUP_PROPERTY) != str(row_group_bytes):
        spark.sql(f"ALTER TABLE {tables.summary} SET TBLPROPERTIES ('{ROW_GROUP_PROPERTY}'='{row_group_bytes}')")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.latest_summary} ({summary}) USING iceberg "
        f"PARTITIONED BY (bucket({latest_buckets}, {config.key_column})) "
        f"TBLPROPERTIES ({_properties(_MERGE_ON_READ)})"
    )
    changes = ", ".join(f"{n} {t}" for n, t in change_columns(config))
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.changes} ({changes}) USING iceberg "
        f"PARTITIONED BY (days(changed_at)) TBLPROPERTIES ({_properties({})})"
    )
