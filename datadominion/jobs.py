"""Job runner port: run one step of the summary job and say how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Protocol

from datadominion.steps import Step

SUCCESS, FAILED = "SUCCESS", "FAILED"


@dataclass(frozen=True)
class JobOutcome:
    state: str  # SUCCESS | FAILED
    job_run_id: str = ""
    detail: str = ""
    log_uri: str = ""
    cloudwatch_logs: str = ""  # log group and stream prefix of the job run (EMR Serverless)
    dashboard_url: str = ""  # the job run's Spark UI (GetDashboardForJobRun; valid for a limited time)
    # batch_key -> reason, for batches the job found invalid (they become REJECTED)
    rejected: Dict[str, str] = field(default_factory=dict)
    # what the step cost: billed vcpu_hours, memory_gb_hours, storage_gb_hours and seconds on
    # AWS (GetJobRun); wall_seconds and cpu_seconds locally
    usage: Dict[str, float] = field(default_factory=dict)
    report: Dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.state == SUCCESS


class JobRunner(Protocol):
    def run(self, step: Step) -> JobOutcome:
        """Run ``step`` to completion (idempotent for the same step)."""
