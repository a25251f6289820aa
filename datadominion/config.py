"""The validated pipeline config (seed shape), shared by the job, the launcher and local mode.

It loads through :func:`load_pipeline_config`, which turns any problem into a
:class:`ConfigError` naming the file, the field and what is wrong. The deploy-time
environment config lives with the infrastructure (``infra/environment.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datadominion.schema import SOURCE_BATCH_COLUMN

SourceType = Literal["bigint", "int", "string", "date", "timestamp", "double"]
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names file, field and problem."""


class StrictModel(BaseModel):
    """Frozen, and unknown fields are errors (a misspelt setting must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceColumn(StrictModel):
    name: str
    type: SourceType

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"{value!r} is not a lower-case identifier")
        return value


class ColumnTransformation(StrictModel):
    """Route invalid values of a summary column to ``replacement`` (NULL by default).

    rule ``allowed_values``: the value must be one of ``values``;
    rule ``range``: the value must lie in [min, max] (either bound optional).
    """

    column: str
    rule: Literal["allowed_values", "range"]
    values: Optional[List[str]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    replacement: Optional[Union[str, int]] = None
    reason: str = ""

    @model_validator(mode="after")
    def _rule_has_its_parameters(self) -> ColumnTransformation:
        if self.rule == "allowed_values" and not self.values:
            raise ValueError(f"transformation of {self.column!r}: rule allowed_values needs a non-empty 'values'")
        if self.rule == "range" and self.min is None and self.max is None:
            raise ValueError(f"transformation of {self.column!r}: rule range needs 'min' or 'max'")
        return self


class RollingColumn(StrictModel):
    name: str
    mapper_column: str = Field(description="the summary scalar column whose monthly values the array holds")

    @field_validator("name")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if not value.endswith("_history"):
            raise ValueError(f"rolling column {value!r} must end in '_history'")
        return value


class GridColumn(StrictModel):
    name: str
    mapper_rolling_column: str
    placeholder: str = "?"
    separator: str = ""

    @field_validator("placeholder")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("placeholder must be exactly one character so the grid keeps one character per month")
        return value


class ShufflePartitions(StrictModel):
    """Shuffle partitions sized from input rows (the seed's 16-8192 rule)."""

    min: int = Field(16, ge=1)
    max: int = Field(8192, ge=1)
    rows_per_partition: int = Field(100_000, ge=1)


# Step Functions can redrive an execution up to 14 days after it ended; snapshots an operator
# may still roll back to or read a re-run's inputs from must outlive that.
REDRIVE_HORIZON_DAYS = 14


class Maintenance(StrictModel):
    """Table maintenance (docs/architecture.md, "Maintenance"): when the Plan schedules it and
    what the maintenance step rewrites and expires."""

    max_delete_files: int = Field(200, ge=1, description="a table with more delete files is due for compaction")
    max_data_files_per_month: int = Field(64, ge=1, description="summary: more data files per month is due")
    max_snapshots: int = Field(400, ge=2, description="more snapshots than this is due for expiry")
    every_days: int = Field(7, ge=1, description="maintain at least this often while steps run")
    delete_file_threshold: int = Field(1, ge=1, description="rewrite a data file with this many delete files")
    min_input_files: int = Field(5, ge=2, description="compact a partition holding this many small files")
    snapshot_retention_days: int = Field(30, description="expire snapshots older than this (keep the newest)")
    orphan_age_days: int = Field(3, ge=1, description="remove unreferenced files older than this")

    @model_validator(mode="after")
    def _outlives_redrive(self) -> Maintenance:
        if self.snapshot_retention_days <= REDRIVE_HORIZON_DAYS:
            raise ValueError(f"maintenance.snapshot_retention_days={self.snapshot_retention_days} must be longer "
                             f"than the {REDRIVE_HORIZON_DAYS}-day redrive horizon of an execution")
        return self


class Expectations(StrictModel):
    """Freshness and coverage (datadominion/freshness.py): when a month is due, and how far a
    month's account count may fall against the month before."""

    month_due_day: int = Field(15, ge=1, le=28, description="month M is expected by this day of M+1")
    max_account_drop_pct: float = Field(10.0, gt=0, le=100, description="a larger month-on-month fall is reported")


class PipelineConfig(StrictModel):
    namespace: str = "default"
    source_table: str
    destination_table: str
    latest_history_table: str
    changes_table: str = Field("summary_changes", description="the amended-history feed (docs/architecture.md, "
                               "'Amended-history feed')")
    history_length: int = Field(ge=1, le=120)
    key_column: str = "cons_acct_key"
    month_column: str = "rpt_as_of_mo"
    timestamp_column: str = "base_ts"
    source_schema: List[SourceColumn]
    columns: Dict[str, str] = Field(description="accounts_all column -> summary column")
    column_transformations: List[ColumnTransformation] = []
    rolling_columns: List[RollingColumn]
    grid_columns: List[GridColumn] = []
    shuffle_partitions: ShufflePartitions = ShufflePartitions()
    max_batch_rows: int = Field(50_000_000, ge=1, description="a batch above this many rows is rejected")
    maintenance: Maintenance = Maintenance()
    expectations: Expectations = Expectations()
    failed_audit_retention_days: int = Field(
        7, ge=0, le=365, description="days a step's unpublished rows stay readable (tag failed_audit_<step>) "
        "after its integrity checks failed; 0 drops them at once")

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        source = {c.name for c in self.source_schema}
        if len(source) != len(self.source_schema):
            raise ValueError("source_schema names a column twice")
        if SOURCE_BATCH_COLUMN in source:
            raise ValueError(f"source_schema may not name {SOURCE_BATCH_COLUMN!r}: accounts_all keeps each record's "
                             "batch in that column")
        for required in (self.key_column, self.month_column, self.timestamp_column):
            if required not in source:
                raise ValueError(f"source_schema lacks the required column {required!r}")
        types = {c.name: c.type for c in self.source_schema}
        if types[self.key_column] != "bigint":
            raise ValueError(f"key column {self.key_column!r} must be bigint")
        if types[self.month_column] != "string":
            raise ValueError(f"month column {self.month_column!r} must be string ('YYYY-MM')")
        if types[self.timestamp_column] != "timestamp":
            raise ValueError(f"timestamp column {self.timestamp_column!r} must be timestamp")
        unknown = sorted(set(self.columns) - source)
        if unknown:
            raise ValueError(f"columns maps source columns not in source_schema: {unknown}")
        targets = list(self.columns.values())
        if len(set(targets)) != len(targets):
            raise ValueError("columns maps two source columns to the same summary column")
        for fixed in (self.key_column, self.month_column, self.timestamp_column):
            if self.columns.get(fixed) != fixed:
                raise ValueError(f"columns must map {fixed!r} to itself (it keys the tables)")
        summary = set(targets)
        for t in self.column_transformations:
            if t.column not in summary:
                raise ValueError(f"column_transformations names {t.column!r}, which is not a summary column")
        rolling = set()
        for r in self.rolling_columns:
            if r.mapper_column not in summary:
                raise ValueError(f"rolling column {r.name!r} maps {r.mapper_column!r}, not a summary column")
            if r.name in summary:
                raise ValueError(f"rolling column {r.name!r} clashes with a summary column")
            rolling.add(r.name)
        for g in self.grid_columns:
            if g.mapper_rolling_column not in rolling:
                raise ValueError(f"grid column {g.name!r} maps {g.mapper_rolling_column!r}, not a rolling column")
        if self.shuffle_partitions.min > self.shuffle_partitions.max:
            raise ValueError("shuffle_partitions.min is larger than shuffle_partitions.max")
        return self

    # --- derived views, one place for each -------------------------------------------------
    @property
    def source_types(self) -> Dict[str, str]:
        return {c.name: c.type for c in self.source_schema}

    @property
    def summary_scalar_types(self) -> Dict[str, str]:
        """Summary scalar column -> type, in source order."""
        types = self.source_types
        return {dest: types[src] for src, dest in self.columns.items()}

    def rolling_type(self, rolling: RollingColumn) -> str:
        return self.summary_scalar_types[rolling.mapper_column]


def describe_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid configuration ({error.error_count()} problem(s))"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  field '{field}': {message}")
    return "\n".join(lines)


def read_json_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def parse_pipeline_config(data: Any, source: str = "<pipeline config>") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(Path(source), exc)) from exc


def load_pipeline_config(path: Union[str, Path]) -> PipelineConfig:
    path = Path(path)
    return parse_pipeline_config(read_json_file(path), str(path))
