"""The EMR Serverless job run for a step (pure: builds the request, talks to nothing).

The client token is what makes submission idempotent: EMR Serverless returns the existing
job run for a token it has seen, so a Step Functions retry, a redrive or a re-planned step
orphaned by a crashed run never starts a second job. It is derived from the step's identity
(mode + batches) and its attempt number, which the ledger increments only when a FAILED or
new batch is started again; a re-run step also carries the run that asked for it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from datadominion.catalog import CatalogSettings, glue_catalog_settings
from datadominion.jobs import FAILED, SUCCESS, JobOutcome
from datadominion.spark_session import catalog_spark_conf
from datadominion.steps import BATCHLESS_MODES, Step

EMR_ICEBERG_JAR = "/usr/share/aws/iceberg/lib/iceberg-spark3-runtime.jar"
S3_REGION_CONF = "spark.datadominion.s3.region"  # read by emr_jobs/ingest.py
# EMR Serverless caps each entry point argument at 10,280 characters: a larger step (an
# initial load of many batches) travels as an object next to its result instead.
INLINE_STEP_LIMIT = 8000
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class JobSettings:
    """Where the job and its inputs live, and how big it runs (from the deployment)."""

    application_id: str
    execution_role_arn: str
    entry_point: str  # s3://<artifacts>/jobs/entrypoint.py
    py_files: str  # s3://<artifacts>/jobs/datadominion-job.zip (datadominion + emr_jobs)
    dependencies: str  # s3://<artifacts>/jobs/job-deps.zip (pure-Python deps, e.g. pydantic)
    config_uri: str  # s3://<artifacts>/configs/pipeline.json
    warehouse: str  # s3://<warehouse>/
    log_uri: str  # s3://<logs>/emr/
    result_prefix: str  # s3://<artifacts>/job-results/
    timeout_minutes: int
    region: str = ""  # the job's S3 region for executor-side reads (no bucket-region lookups)
    log_group: str = ""  # CloudWatch log group of the job runs (driver and executor stdout/stderr)
    driver_cores: int = 4
    driver_memory_gb: int = 16
    executor_cores: int = 4
    executor_memory_gb: int = 16
    latest_buckets: int = 1024
    tags: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> JobSettings:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @property
    def catalog(self) -> CatalogSettings:
        return glue_catalog_settings(self.warehouse)


def client_token(step: Step, attempt: int) -> str:
    """Stable for the same work and attempt; at most 64 characters of [A-Za-z0-9._-]."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    token = f"dd-{step.step_id}-{attempt}"
    if step.mode in BATCHLESS_MODES:  # each request is new work; its retries and redrives are not
        token += "-" + _TOKEN_UNSAFE.sub("_", step.run_id)[:20]
    return token[:64]


def job_name(step: Step) -> str:
    months = step.months[0] if len(step.months) == 1 else f"{step.months[0]}..{step.months[-1]}"
    return f"{step.mode}-{months}-{step.step_id[:8]}"


def result_uri(settings: JobSettings, step: Step, attempt: int) -> str:
    return f"{settings.result_prefix.rstrip('/')}/{step.step_id}/{attempt}.json"


def step_uri(settings: JobSettings, step: Step, attempt: int) -> str:
    return f"{settings.result_prefix.rstrip('/')}/{step.step_id}/{attempt}.step.json"


def needs_step_file(step: Step) -> bool:
    """True when the step must be written to :func:`step_uri` before the job is submitted."""
    return len(step.to_json()) > INLINE_STEP_LIMIT


def store_step_if_large(settings: JobSettings, step: Step, write_text: Callable[[str, str], None]) -> None:
    """Write the step where its job will read it, when it is too large to pass inline."""
    if needs_step_file(step):
        write_text(step_uri(settings, step, step.attempt), step.to_json())


def spark_submit_parameters(settings: JobSettings) -> str:
    conf = {
        "spark.jars": EMR_ICEBERG_JAR,
        "spark.archives": f"{settings.dependencies}#deps",
        "spark.driver.cores": str(settings.driver_cores),
        "spark.driver.memory": f"{settings.driver_memory_gb}g",
        "spark.executor.cores": str(settings.executor_cores),
        "spark.executor.memory": f"{settings.executor_memory_gb}g",
        "spark.dynamicAllocation.enabled": "true",
        "spark.sql.adaptive.enabled": "true",
        S3_REGION_CONF: settings.region,
        "spark.hadoop.hive.metastore.client.factory.class":
            "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory",
        # The Glue Iceberg catalog, the same settings the job's session builder applies.
        **catalog_spark_conf(settings.catalog),
    }
    return " ".join([f"--py-files {settings.py_files}"] + [f"--conf {k}={v}" for k, v in conf.items()])


def start_job_run_request(settings: JobSettings, step: Step, attempt: int) -> Dict[str, Any]:
    """The boto3 ``emr-serverless.start_job_run`` arguments for ``step``."""
    arguments: List[str] = [
        "--config", settings.config_uri,
        "--catalog", json.dumps(settings.catalog.as_args(), sort_keys=True),
        "--step", step_uri(settings, step, attempt) if needs_step_file(step) else step.to_json(),
        "--latest-buckets", str(settings.latest_buckets),
        "--result-uri", result_uri(settings, step, attempt),
    ]
    return {
        "applicationId": settings.application_id,
        "clientToken": client_token(step, attempt),
        "executionRoleArn": settings.execution_role_arn,
        "name": job_name(step),
        "jobDriver": {"sparkSubmit": {
            "entryPoint": settings.entry_point,
            "entryPointArguments": arguments,
            "sparkSubmitParameters": spark_submit_parameters(settings),
        }},
        "configurationOverrides": {"monitoringConfiguration": monitoring(settings)},
        "executionTimeoutMinutes": settings.timeout_minutes,
        "tags": {**settings.tags, "datadominion:step": step.step_id, "datadominion:mode": step.mode},
    }


LOG_STREAM_PREFIX = "datadominion"


def monitoring(settings: JobSettings) -> Dict[str, Any]:
    """Logs to S3 (kept with the artifacts) and, with a log group, to CloudWatch as well."""
    config: Dict[str, Any] = {"s3MonitoringConfiguration": {"logUri": settings.log_uri}}
    if settings.log_group:
        config["cloudWatchLoggingConfiguration"] = {
            "enabled": True, "logGroupName": settings.log_group, "logStreamNamePrefix": LOG_STREAM_PREFIX,
            "logTypes": {"SPARK_DRIVER": ["STDOUT", "STDERR"], "SPARK_EXECUTOR": ["STDERR"]}}
    return config


def cloudwatch_location(settings: JobSettings, job_run_id: str) -> str:
    """Where a job run's CloudWatch log streams are (EMR Serverless names them
    <prefix>/applications/<application>/jobs/<job run>/<worker>/<stdout|stderr>)."""
    if not settings.log_group or not job_run_id:
        return ""
    return (f"{settings.log_group}:{LOG_STREAM_PREFIX}/applications/{settings.application_id}/jobs/"
            f"{job_run_id}/")


def for_step_functions(request: Dict[str, Any]) -> Dict[str, Any]:
    """The same request as Step Functions task Parameters (PascalCase keys; tag keys kept)."""
    def convert(value: Any, keep_keys: bool = False) -> Any:
        if isinstance(value, dict):
            return {(k if keep_keys else k[0].upper() + k[1:]): convert(v, keep_keys=(k == "tags")) for k, v in
                    value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value
    return dict(convert(request))


def log_location(settings: JobSettings, job_run_id: str) -> str:
    """Where EMR Serverless writes a job run's driver logs under the configured log URI."""
    return f"{settings.log_uri.rstrip('/')}/applications/{settings.application_id}/jobs/{job_run_id}/"


def job_usage(job_run: Dict[str, Any]) -> Dict[str, float]:
    """A finished job run's billed usage (GetJobRun's ``jobRun``): the only per-step cost view
    EMR Serverless gives, since job-run tags do not attribute cost."""
    billed = job_run.get("billedResourceUtilization") or {}
    usage = {"vcpu_hours": billed.get("vCPUHour"), "memory_gb_hours": billed.get("memoryGBHour"),
             "storage_gb_hours": billed.get("storageGBHour"), "seconds": job_run.get("totalExecutionDurationSeconds")}
    return {name: float(value) for name, value in usage.items() if value is not None}


def job_outcome(job_run_id: str, job_state: str, state_details: str, log_uri: str,
                result_text: Optional[str], cloudwatch_logs: str = "", dashboard_url: str = "",
                usage: Optional[Dict[str, float]] = None) -> JobOutcome:
    """How a step ended, from the job run's final state and the result the job wrote (if any)."""
    result: Dict[str, Any] = {}
    if result_text:
        try:
            result = dict(json.loads(result_text))
        except ValueError:
            result = {"detail": f"unreadable job result: {result_text[:200]!r}"}
    rejected = {str(k): str(v) for k, v in dict(result.get("rejected") or {}).items()}
    # A successful job may still have rejected some batches (it applied the others).
    if job_state == "SUCCESS" and result.get("state", "SUCCESS") == "SUCCESS":
        return JobOutcome(SUCCESS, job_run_id, log_uri=log_uri, cloudwatch_logs=cloudwatch_logs,
                          dashboard_url=dashboard_url, report=dict(result.get("report") or {}), rejected=rejected,
                          usage=dict(usage or {}))
    detail = "; ".join(part for part in (
        f"job run {job_run_id or '?'} ended {job_state}", state_details, str(result.get("detail") or "")) if part)
    return JobOutcome(FAILED, job_run_id, detail[:4000], log_uri=log_uri, cloudwatch_logs=cloudwatch_logs,
                      dashboard_url=dashboard_url, rejected=rejected, usage=dict(usage or {}))
