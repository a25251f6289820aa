"""Where the Iceberg tables live: one settings object shared by Spark and pyiceberg.

Local mode: an Iceberg JDBC catalog on a SQLite file, the same file pyiceberg's SqlCatalog
opens, so the launcher (pyiceberg) and the job (Spark) see the same tables.
AWS mode: the Glue Data Catalog with data on S3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional

CATALOG_NAME = "datadominion"
# The Lambda asset ships without pyarrow: pyiceberg reads metadata over fsspec/s3fs. Said
# explicitly, so a machine that has pyarrow (a developer's, the tests') takes the same path.
PY_IO_IMPL, FSSPEC_IO = "py-io-impl", "pyiceberg.io.fsspec.FsspecFileIO"


@dataclass(frozen=True)
class CatalogSettings:
    kind: Literal["local", "glue"]
    warehouse: str
    name: str = CATALOG_NAME
    sqlite_path: Optional[str] = None
    # Extra pyiceberg properties (endpoints and credentials for tests against moto).
    properties: Dict[str, str] = field(default_factory=dict)

    def as_args(self) -> Dict[str, Any]:
        """Plain form for job arguments (JSON)."""
        return {
            "kind": self.kind,
            "warehouse": self.warehouse,
            "name": self.name,
            "sqlite_path": self.sqlite_path,
            "properties": dict(self.properties),
        }

    @classmethod
    def from_args(cls, data: Dict[str, Any]) -> CatalogSettings:
        return cls(
            kind=data["kind"],
            warehouse=data["warehouse"],
            name=data.get("name", CATALOG_NAME),
            sqlite_path=data.get("sqlite_path"),
            properties=dict(data.get("properties") or {}),
        )


def local_catalog_settings(home: Path) -> CatalogSettings:
    home = home.resolve()
    return CatalogSettings(
        kind="local",
        warehouse=(home / "warehouse").as_uri(),
        sqlite_path=str(home / "catalog.db"),
    )


def glue_catalog_settings(warehouse: str, properties: Optional[Dict[str, str]] = None) -> CatalogSettings:
    return CatalogSettings(kind="glue", warehouse=warehouse, properties=dict(properties or {}))


def load_pyiceberg_catalog(settings: CatalogSettings) -> Any:
    """Open the catalog with pyiceberg (imported lazily: the Spark job does not need it)."""
    if settings.kind == "local":
        from pyiceberg.catalog.sql import SqlCatalog

        assert settings.sqlite_path is not None
        Path(settings.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        Path(settings.warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        # Constructing SqlCatalog creates the catalog tables, which Spark then must not
        # try to create itself (it would hold a SQLite lock for its whole session).
        return SqlCatalog(
            settings.name,
            uri=f"sqlite:///{settings.sqlite_path}",
            warehouse=settings.warehouse,
            **settings.properties,
        )
    from pyiceberg.catalog.glue import GlueCatalog

    return GlueCatalog(settings.name, warehouse=settings.warehouse, **{PY_IO_IMPL: FSSPEC_IO, **settings.properties})
