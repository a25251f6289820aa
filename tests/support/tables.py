"""Fresh summary tables for a test, each set in a namespace of its own."""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from datadominion.catalog import CatalogSettings
from datadominion.config import PipelineConfig

_namespaces = itertools.count(1)


@dataclass(frozen=True)
class Isolated:
    """One test's own tables (in their own namespace) and landing folder."""

    config: PipelineConfig
    tables: Any  # emr_jobs.tables.Tables
    landing: Path


def fresh_tables(spark: Any, catalog_settings: CatalogSettings, pipeline_config: PipelineConfig,
                 landing: Path) -> Isolated:
    """Fresh tables in their own namespace, with ``landing`` as their landing folder."""
    from emr_jobs.tables import Tables, create_tables

    config = pipeline_config.model_copy(update={"namespace": f"t{next(_namespaces)}"})
    tables = Tables(catalog_settings.name, config)
    create_tables(spark, tables, latest_buckets=4)
    return Isolated(config, tables, landing)


@contextmanager
def set_back_after(spark: Any, *tables: str) -> Iterator[None]:
    """Run a block that may write to ``tables`` (a test corrupting them), then set each table's
    current snapshot back to the one it had before: tests that corrupt rows share one step."""
    from emr_jobs.summarise import current_snapshot
    from emr_jobs.tables import iceberg_table

    heads = {table: current_snapshot(spark, table) for table in tables}
    try:
        yield
    finally:
        for table, head in heads.items():
            iceberg_table(spark, table).manageSnapshots().setCurrentSnapshot(head).commit()
