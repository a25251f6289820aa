"""The per-environment deploy config (``configs/environments/<env>.json``): region, account,
EMR Serverless capacity, schedule, alarms and run policy. Only the CDK app reads it; a bad
file fails naming the file, the field and the problem (:class:`ConfigError`)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Literal, Optional, Union

from pydantic import Field, ValidationError, model_validator

from datadominion.config import ConfigError, StrictModel, describe_validation_error, read_json_file
from datadominion.lifecycle import RunPolicy

ACCOUNT_PLACEHOLDER = "ACCOUNT_ID_PLACEHOLDER"
DEFAULT_QUALIFIER = "hnb659fds"  # CDK's default bootstrap qualifier


class EmrSettings(StrictModel):
    release_label: str = "emr-7.12.0"
    max_cpu: str = Field(pattern=r"^\d+ ?vCPU$")
    max_memory: str = Field(pattern=r"^\d+ ?GB$")
    max_disk: str = Field("1000 GB", pattern=r"^\d+ ?GB$")
    idle_timeout_minutes: int = Field(15, ge=1, le=10080)
    job_timeout_minutes: int = Field(ge=5, le=10080)
    driver_cores: int = Field(4, ge=1, le=16)
    driver_memory_gb: int = Field(16, ge=2, le=120)
    executor_cores: int = Field(4, ge=1, le=16)
    executor_memory_gb: int = Field(16, ge=2, le=120)
    python_version: Literal["3.9", "3.11"] = "3.9"


class ScheduleSettings(StrictModel):
    sweep_expression: str = Field("rate(1 hour)", pattern=r"^(rate|cron)\(.+\)$")
    enabled: bool = True


class AlarmSettings(StrictModel):
    notification_email: Optional[str] = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    lock_held_minutes: int = Field(360, ge=5)
    rejected_batches_threshold: int = Field(1, ge=1)


class LandingSettings(StrictModel):
    """The run policy of the deployed launcher (defaults: datadominion.lifecycle.RunPolicy)."""

    future_month_tolerance: int = Field(RunPolicy.tolerance_months, ge=0, le=24,
                                        description="months after the current one still accepted")
    lock_lease_minutes: int = Field(RunPolicy.lease_seconds // 60, ge=1, le=1440)
    max_attempts: int = Field(RunPolicy.max_attempts, ge=1, le=20,
                              description="failed attempts before a batch is parked")
    incomplete_after_hours: int = Field(RunPolicy.incomplete_after_hours, ge=1, le=24 * 14,
                                        description="report a batch folder with data but no _SUCCESS after this")


PRINCIPAL_ARN = r"^arn:aws:iam::\d{12}:(root|(role|user)/[A-Za-z0-9+=,.@_/-]+)$"


class Producer(StrictModel):
    """A feed allowed to deliver batches into the landing bucket (same or another account).

    ``batch_prefix`` confines it to batch folders whose id starts with that prefix
    (``accounts_all/rpt_as_of_mo=*/<batch_prefix>*``), so feeds cannot overwrite each other.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    principal_arn: str = Field(pattern=PRINCIPAL_ARN)
    batch_prefix: str = Field("", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$|^$")


class EnvironmentConfig(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")
    account: str = Field(pattern=rf"^(\d{{12}}|{ACCOUNT_PLACEHOLDER})$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    bootstrap_qualifier: str = Field(DEFAULT_QUALIFIER, pattern=r"^[a-z0-9]{1,10}$",
                                     description="the qualifier given to `cdk bootstrap --qualifier`")
    retain_data: bool
    emr: EmrSettings
    schedule: ScheduleSettings = ScheduleSettings()
    alarms: AlarmSettings = AlarmSettings()
    landing: LandingSettings = LandingSettings()
    producers: List[Producer] = []
    log_retention_days: int = Field(90, ge=1)
    tags: Dict[str, str] = {}

    @property
    def run_policy(self) -> RunPolicy:
        return RunPolicy(self.landing.future_month_tolerance, self.landing.lock_lease_minutes * 60,
                         self.landing.max_attempts, self.landing.incomplete_after_hours)

    @property
    def deployable_account(self) -> Optional[str]:
        """The 12-digit account, or None while the file still holds the placeholder."""
        return None if self.account == ACCOUNT_PLACEHOLDER else self.account

    @model_validator(mode="after")
    def _producers_are_distinct(self) -> EnvironmentConfig:
        names = [p.name for p in self.producers]
        if len(set(names)) != len(names):
            raise ValueError(f"producers: names must be distinct, got {names}")
        return self

    @model_validator(mode="after")
    def _lease_outlives_a_job(self) -> EnvironmentConfig:
        # A run's lease is renewed between steps, not during one: it must outlast the longest
        # job, else a second run could take the lock while the first run's job still writes.
        if self.landing.lock_lease_minutes <= self.emr.job_timeout_minutes:
            raise ValueError(f"landing.lock_lease_minutes ({self.landing.lock_lease_minutes}) must be greater than "
                             f"emr.job_timeout_minutes ({self.emr.job_timeout_minutes})")
        return self


def load_environment_config(path: Union[str, Path]) -> EnvironmentConfig:
    path = Path(path)
    data = read_json_file(path)
    try:
        config = EnvironmentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from exc
    if config.name != path.stem:
        raise ConfigError(f"{path}: field 'name': is {config.name!r} but the file is named {path.stem!r}")
    return config
