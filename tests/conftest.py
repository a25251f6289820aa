"""Shared fixtures: one local SparkSession (Iceberg JDBC catalog on SQLite) for the whole run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from datadominion.catalog import CatalogSettings, local_catalog_settings
from datadominion.config import PipelineConfig, load_pipeline_config
from tests.support.paths import PIPELINE_CONFIG
from tests.support.tables import fresh_tables


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

    # One session serves every Spark test: more heap than a single local run needs.
    session = build_spark_session(catalog_settings, app_name="datadominion-tests",
                                  extra_conf={"spark.driver.memory": "6g"})
    yield session
    session.stop()


@pytest.fixture
def isolated(spark: Any, catalog_settings: CatalogSettings, pipeline_config: PipelineConfig, tmp_path: Path) -> Any:
    """Fresh tables in their own namespace, plus a landing folder, for one test."""
    return fresh_tables(spark, catalog_settings, pipeline_config, tmp_path / "landing")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server on 127.0.0.1 for the session (state is reset per test by ``aws``)."""
    from moto.server import ThreadedMotoServer

    from tests.support.aws import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh moto account with the deployment's resources and the Lambdas' environment."""
    import json as _json

    import requests

    from datadominion.job_request import JobSettings
    from lambdas import wiring
    from tests.support.aws import CREDENTIALS, REGION, client, create_ledger_table

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": moto_server, "POWERTOOLS_TRACE_DISABLED": "true",
                        "POWERTOOLS_METRICS_NAMESPACE": "DataDominion", "POWERTOOLS_SERVICE_NAME": "datadominion",
                        "POWERTOOLS_DEV": "false"}.items():
        monkeypatch.setenv(name, value)

    class Aws:
        endpoint = moto_server
        landing, artifacts, warehouse = "dd-landing", "dd-artifacts", "dd-warehouse"
        ledger_table, database = "dd-ledger", "datadominion_dev"  # the dev stack's Glue database
        s3 = client("s3", moto_server)
        dynamodb = client("dynamodb", moto_server)
        glue = client("glue", moto_server)
        emr = client("emr-serverless", moto_server)
        catalog_properties = {"glue.endpoint": moto_server, "glue.region": REGION, "glue.access-key-id": "testing",
                              "glue.secret-access-key": "testing", "s3.endpoint": moto_server,
                              "s3.region": REGION, "s3.access-key-id": "testing", "s3.secret-access-key": "testing"}

    env = Aws()
    for bucket in (env.landing, env.artifacts, env.warehouse):
        env.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    create_ledger_table(env.dynamodb, env.ledger_table)
    env.glue.create_database(DatabaseInput={"Name": env.database})
    env.application_id = env.emr.create_application(name="dd", releaseLabel="emr-7.12.0", type="SPARK")[
        "applicationId"]
    env.job_settings = JobSettings(
        application_id=env.application_id, execution_role_arn="arn:aws:iam::123456789012:role/dd-job",
        entry_point=f"s3://{env.artifacts}/jobs/entrypoint.py", py_files=f"s3://{env.artifacts}/jobs/datadominion-job.zip",
        dependencies=f"s3://{env.artifacts}/jobs/job-deps.zip", config_uri=f"s3://{env.artifacts}/configs/pipeline.json",
        warehouse=f"s3://{env.warehouse}/", log_uri=f"s3://{env.artifacts}/emr-logs/",
        result_prefix=f"s3://{env.artifacts}/job-results/", timeout_minutes=120, tags={"environment": "test"},
        region=REGION, log_group="/aws/emr-serverless/datadominion-dev")
    for name, value in {"DATADOMINION_ENVIRONMENT": "test", "LEDGER_TABLE": env.ledger_table,
                        "LANDING_BUCKET": env.landing, "SUMMARY_TABLE": f"{env.database}.summary",
                        "LATEST_SUMMARY_TABLE": f"{env.database}.latest_summary",
                        "MANIFEST_PREFIX": f"s3://{env.artifacts}/manifests/",
                        "FUTURE_MONTH_TOLERANCE": "1", "LOCK_LEASE_SECONDS": "9000",
                        "JOB_SETTINGS": env.job_settings.to_json(),
                        "CATALOG_PROPERTIES": _json.dumps(env.catalog_properties)}.items():
        monkeypatch.setenv(name, value)
    wiring.settings.cache_clear()
    wiring.client.cache_clear()
    yield env
    wiring.settings.cache_clear()
    wiring.client.cache_clear()


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup scheduling reads the groups
def pytest_collection_modifyitems(items: list) -> None:
    """Under two workers (`make test`), every test that drives Spark (the session fixture, or a
    `datadominion` command's own JVM) runs on one worker and the rest (moto, CDK synth, the
    planners) on the other: one Spark JVM already keeps the 2 cores ~70% busy, a second only
    queues behind it (docs/benchmarks.md, fourteenth and twenty-fifth), while the AWS-side tests
    use the idle share. The infra tests share build/, so they never run on two workers at once."""
    for item in items:
        group = "spark" if item.get_closest_marker("spark") or "spark" in getattr(item, "fixturenames", ()) \
            else "aws"
        item.add_marker(pytest.mark.xdist_group(group))
