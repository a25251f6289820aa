"""Adapters for the Lambdas, built from their settings. Clients are created per container
on first use (cached), never at import time."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from functools import cache, lru_cache
from typing import Any, Dict, List, Optional
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from datadominion import table_metadata
from datadominion.adapters.dynamodb_ledger import DynamoDbLedger
from datadominion.adapters.s3_storage import S3Storage
from datadominion.catalog import glue_catalog_settings, load_pyiceberg_catalog
from datadominion.job_request import job_usage
from datadominion.maintenance import TableHealth
from datadominion.registration import CHECK_WORKERS, ManifestSink
from lambdas.settings import LambdaSettings, SettingsError


def now() -> datetime:
    """The handlers' clock: one place, so the state-machine tests can move time."""
    return datetime.now(timezone.utc)


@lru_cache(maxsize=1)
def settings() -> LambdaSettings:
    return LambdaSettings.from_env(os.environ)


@cache
def client(service: str) -> Any:
    # Register checks a batch's objects with CHECK_WORKERS threads sharing this client.
    return boto3.client(service, config=Config(max_pool_connections=CHECK_WORKERS))  # type: ignore[call-overload]


def ledger(s: LambdaSettings) -> DynamoDbLedger:
    return DynamoDbLedger(client("dynamodb"), s.ledger_table)


def storage(s: LambdaSettings) -> S3Storage:
    return S3Storage(client("s3"), s.landing_bucket)


def manifests(s: LambdaSettings) -> ManifestSink:
    if not s.manifest_prefix:
        raise SettingsError("MANIFEST_PREFIX is not set for this function")
    return ManifestSink(s.manifest_prefix, write_text)


def catalog(s: LambdaSettings) -> Any:
    """The Glue catalog through pyiceberg; a handler opens it once and passes it on."""
    return load_pyiceberg_catalog(glue_catalog_settings(s.job.warehouse, s.catalog_properties))


def summary_rows_per_month(s: LambdaSettings, glue: Any) -> Dict[str, int]:
    """The months in summary and their accounts, from its Iceberg metadata (no data file read)."""
    return table_metadata.rows_per_month(glue, s.summary_table, s.month_column)


def source_bytes_per_record(s: LambdaSettings, glue: Any) -> Optional[float]:
    """accounts_all's stored bytes per record (snapshot summary): the preview's size estimate."""
    return table_metadata.bytes_per_record(glue, s.source_table) if s.source_table else None


def table_healths(s: LambdaSettings, glue: Any, months: int) -> List[TableHealth]:
    """summary's and latest_summary's health from their metadata (datadominion/maintenance.py)."""
    healths = [table_metadata.table_health(glue, s.summary_table, "summary", months),
               table_metadata.table_health(glue, s.latest_summary_table, "latest_summary", 1)]
    return [h for h in healths if h is not None]


def read_text(uri: str) -> Optional[str]:
    """A small S3 object as text, or None when it does not exist (e.g. a job killed early)."""
    parsed = urlparse(uri)
    s3 = client("s3")
    try:
        body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    return str(body.read().decode("utf-8"))


def write_text(uri: str, text: str) -> None:
    parsed = urlparse(uri)
    client("s3").put_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=text.encode("utf-8"))


def job_run_usage(s: LambdaSettings, job_run_id: str) -> Dict[str, float]:
    """The job run's billed usage (best effort, like the dashboard link)."""
    try:
        response = client("emr-serverless").get_job_run(applicationId=s.job.application_id, jobRunId=job_run_id)
    except (BotoCoreError, ClientError):
        return {}
    return job_usage(response.get("jobRun") or {})


def put_event(s: LambdaSettings, event: Dict[str, Any]) -> bool:
    """Announce on the environment's bus; False when EventBridge did not take the entry (the
    change records are in the table either way: `datadominion changes` and SQL read them)."""
    entry = {"Source": event["source"], "DetailType": event["detail_type"], "Detail": json.dumps(event["detail"]),
             "EventBusName": s.event_bus}
    try:
        response = client("events").put_events(Entries=[entry])
    except (BotoCoreError, ClientError):
        return False
    return not response.get("FailedEntryCount")


def dashboard_url(s: LambdaSettings, job_run_id: str) -> str:
    """The job run's Spark UI link, or "" when EMR Serverless cannot give one (best effort: the
    step's outcome is recorded either way)."""
    try:
        response = client("emr-serverless").get_dashboard_for_job_run(applicationId=s.job.application_id,
                                                                      jobRunId=job_run_id)
    except (BotoCoreError, ClientError):
        return ""
    return str(response.get("url") or "")
