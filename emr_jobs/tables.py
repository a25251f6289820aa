"""Table names, schemas and DDL of the three Iceberg tables, all derived from the pipeline config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from datadominion.config import PipelineConfig
from datadominion.schema import SPARK_SQL_TYPES

BATCHES_PROPERTY = "datadominion.batches"


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


def _properties(extra: dict) -> str:
    items = {**_COMMON_PROPERTIES, **extra}
    return ", ".join(f"'{k}'='{v}'" for k, v in items.items())


def create_tables(spark: Any, tables: Tables, latest_buckets: int = 16) -> None:
    """Create the namespace and the three tables if missing (safe to repeat)."""
    config = tables.config
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {tables.catalog}.{config.namespace}")
    source = ", ".join(f"{c.name} {SPARK_SQL_TYPES[c.type]}" for c in config.source_schema)
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.accounts_all} ({source}) USING iceberg "
        f"PARTITIONED BY ({config.month_column}) TBLPROPERTIES ({_properties({})})"
    )
    summary = ", ".join(f"{n} {t}" for n, t in summary_columns(config))
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.summary} ({summary}) USING iceberg "
        f"PARTITIONED BY ({config.month_column}) TBLPROPERTIES ({_properties(_MERGE_ON_READ)})"
    )
    spark.sql(f"ALTER TABLE {tables.summary} WRITE ORDERED BY {config.key_column}")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {tables.latest_summary} ({summary}) USING iceberg "
        f"PARTITIONED BY (bucket({latest_buckets}, {config.key_column})) "
        f"TBLPROPERTIES ({_properties(_MERGE_ON_READ)})"
    )
