"""Shared fixtures: one local SparkSession (Iceberg JDBC catalog on SQLite) for the whole run."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator

import pytest

from datadominion.catalog import CatalogSettings, local_catalog_settings
from datadominion.config import PipelineConfig, load_pipeline_config

REPO = Path(__file__).resolve().parents[1]
PIPELINE_CONFIG = REPO / "configs" / "pipeline.json"
_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def pipeline_config() -> PipelineConfig:
    return load_pipeline_config(PIPELINE_CONFIG)


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dd_home")


@pytest.fixture(scope="session")
def catalog_settings(spark_home: Path) -> CatalogSettings:
    return local_catalog_settings(spark_home)


@pytest.fixture(scope="session")
def spark(catalog_settings: CatalogSettings) -> Iterator[Any]:
    from datadominion.spark_session import build_spark_session

    session = build_spark_session(catalog_settings, app_name="datadominion-tests")
    yield session
    session.stop()


@pytest.fixture
def isolated(spark: Any, catalog_settings: CatalogSettings, pipeline_config: PipelineConfig, tmp_path: Path) -> Any:
    """Fresh tables in their own namespace, plus a landing folder, for one test."""
    from emr_jobs.tables import Tables, create_tables

    config = pipeline_config.model_copy(update={"namespace": f"t{next(_namespaces)}"})
    tables = Tables(catalog_settings.name, config)
    create_tables(spark, tables, latest_buckets=4)

    class Env:
        pass

    env = Env()
    env.config = config  # type: ignore[attr-defined]
    env.tables = tables  # type: ignore[attr-defined]
    env.landing = tmp_path / "landing"  # type: ignore[attr-defined]
    return env
