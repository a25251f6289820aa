"""The Lambdas' settings, read once from their environment (set by the CDK stack)."""

from __future__ import annotations

import json
from typing import Dict, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datadominion.config import Expectations, Maintenance
from datadominion.job_request import JobSettings
from datadominion.lifecycle import RunPolicy

# environment variable -> settings field
VARIABLES = {
    "DATADOMINION_ENVIRONMENT": "environment",
    "LEDGER_TABLE": "ledger_table",
    "LANDING_BUCKET": "landing_bucket",
    "MANIFEST_PREFIX": "manifest_prefix",
    "SUMMARY_TABLE": "summary_table",
    "LATEST_SUMMARY_TABLE": "latest_summary_table",
    "SOURCE_TABLE": "source_table",
    "HISTORY_LENGTH": "history_length",
    "MAINTENANCE": "maintenance",
    "EXPECTATIONS": "expectations",
    "MONTH_COLUMN": "month_column",
    "FUTURE_MONTH_TOLERANCE": "future_month_tolerance",
    "LOCK_LEASE_SECONDS": "lock_lease_seconds",
    "MAX_ATTEMPTS": "max_attempts",
    "INCOMPLETE_AFTER_HOURS": "incomplete_after_hours",
    "JOB_SETTINGS": "job_settings",
    "CATALOG_PROPERTIES": "catalog_properties",
    "EVENT_BUS": "event_bus",
}


class SettingsError(RuntimeError):
    pass


class LambdaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str
    ledger_table: str
    landing_bucket: str = ""
    manifest_prefix: str = Field("", description="s3://<artifacts>/manifests/: each registered batch's object list")
    summary_table: str = Field("", description="<glue database>.<table> of the summary table")
    latest_summary_table: str = Field("", description="<glue database>.<table> of latest_summary")
    source_table: str = Field("", description="<glue database>.<table> of accounts_all (metadata only)")
    history_length: int = Field(36, ge=1)
    maintenance: Maintenance = Maintenance()  # when the Plan schedules maintenance (pipeline config)
    expectations: Expectations = Expectations()  # freshness and coverage (pipeline config)
    month_column: str = "rpt_as_of_mo"
    future_month_tolerance: int = Field(RunPolicy.tolerance_months, ge=0)
    lock_lease_seconds: int = Field(RunPolicy.lease_seconds, ge=60)
    max_attempts: int = Field(RunPolicy.max_attempts, ge=1)
    incomplete_after_hours: int = Field(RunPolicy.incomplete_after_hours, ge=1)
    job_settings: Dict[str, object] = {}
    catalog_properties: Dict[str, str] = {}
    event_bus: str = Field("default", description="EventBridge bus of the amended-history events")

    @property
    def policy(self) -> RunPolicy:
        return RunPolicy(self.future_month_tolerance, self.lock_lease_seconds, self.max_attempts,
                         self.incomplete_after_hours)

    @property
    def job(self) -> JobSettings:
        if not self.job_settings:
            raise SettingsError("JOB_SETTINGS is not set for this function")
        return JobSettings.from_json(json.dumps(self.job_settings))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LambdaSettings:
        values: Dict[str, object] = {}
        for variable, name in VARIABLES.items():
            if variable not in env:
                continue
            raw = env[variable]
            if name in ("job_settings", "catalog_properties", "maintenance", "expectations"):
                try:
                    values[name] = json.loads(raw) if raw else {}
                except ValueError as exc:
                    raise SettingsError(f"environment variable {variable} is not valid JSON: {exc}") from exc
            else:
                values[name] = raw
        try:
            return cls(**values)
        except ValidationError as exc:
            by_field = {v: k for k, v in VARIABLES.items()}
            problems = "; ".join(f"{by_field.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors())
            raise SettingsError(f"invalid Lambda environment: {problems}") from exc
