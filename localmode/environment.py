"""Local mode wiring: the adapters for one DATADOMINION_HOME folder.

    $DATADOMINION_HOME/landing/    the landing "bucket"
    $DATADOMINION_HOME/ledger.db   the SQLite ledger
    $DATADOMINION_HOME/catalog.db  the Iceberg SQL catalog (pyiceberg + Spark JDBC)
    $DATADOMINION_HOME/warehouse/  table data
    $DATADOMINION_HOME/manifests/  each registered batch's object list
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from datadominion.adapters.local_storage import LocalStorage, write_local_text
from datadominion.adapters.sqlite_ledger import SqliteLedger
from datadominion.catalog import CatalogSettings, load_pyiceberg_catalog, local_catalog_settings
from datadominion.config import PipelineConfig
from datadominion.maintenance import maintenance_reasons
from datadominion.registration import ManifestSink
from datadominion.table_metadata import newest_summarised_month, summarised_months, table_health
from localmode.loop import ProcessResult, process
from localmode.spark_runner import LocalSparkJobRunner

LOCAL_LATEST_BUCKETS = 4


@dataclass
class LocalEnvironment:
    home: Path
    config: PipelineConfig
    spark_conf: Optional[Dict[str, str]] = None  # settings the Spark session adds to the local ones

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.landing = self.home / "landing"
        self.landing.mkdir(parents=True, exist_ok=True)
        self.storage = LocalStorage(self.landing)
        self.manifests = ManifestSink((self.home / "manifests").as_uri(), write_local_text)
        self.ledger = SqliteLedger(self.home / "ledger.db")
        self.catalog_settings: CatalogSettings = local_catalog_settings(self.home)
        self._catalog: Optional[Any] = None
        self.runner = LocalSparkJobRunner(self.catalog_settings, self.config, LOCAL_LATEST_BUCKETS, self.spark_conf)

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            self._catalog = load_pyiceberg_catalog(self.catalog_settings)
        return self._catalog

    def identifier(self, table: str) -> str:
        return f"{self.config.namespace}.{table}"

    def process(self, **options: Any) -> ProcessResult:
        """Register and apply everything pending with this home's adapters (launcher.process)."""
        options.setdefault("maintenance_due", self.maintenance_due)
        return process(self.storage, self.ledger, self.runner, self.newest_summarised, manifests=self.manifests,
                       **options)

    def maintenance_due(self) -> List[str]:
        """Why the tables are due for maintenance now (the Plan's rule, datadominion/maintenance.py)."""
        months = len(summarised_months(self.catalog, self.identifier(self.config.destination_table),
                                       self.config.month_column))
        tables = ((self.config.destination_table, "summary", months),
                  (self.config.latest_history_table, "latest_summary", 1))
        healths = [table_health(self.catalog, self.identifier(table), name, count) for table, name, count in tables]
        return maintenance_reasons([h for h in healths if h is not None], self.config.maintenance,
                                   datetime.now(timezone.utc))

    def newest_summarised(self) -> Optional[str]:
        return newest_summarised_month(self.catalog, self.identifier(self.config.destination_table),
                                       self.config.month_column)
