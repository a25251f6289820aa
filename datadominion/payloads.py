"""What the state machine's tasks return, as typed models: the one description of the seam
between the Lambdas (which build these) and the definition's JSONPaths (``infra/workflow.py``
builds every path it reads through :func:`at`, so a renamed field fails the synth, not a run).

Each task's result lands at ``$.<state>.value``; Map items at ``$.item``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Type

from pydantic import BaseModel, ConfigDict

Verdict = Literal["DONE", "REJECTED", "FAILED"]  # = ledger.DONE, REJECTED, FAILED (tests/unit/test_payloads.py)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def out(self) -> Dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Registration(Payload):
    kind: Literal["event", "sweep", "rerun", "maintain"]
    rerun_months: List[str]
    retry_failed: bool
    maintain: bool  # the operator asked for table maintenance
    plan_only: bool  # preview what the run would do: nothing registered, locked or started
    registered: List[str]
    registered_count: int
    rejected: Dict[str, str]
    rejected_count: int
    duplicates: List[str]
    duplicate_count: int
    incomplete: List[str]  # sweep: batch folders with data but no _SUCCESS for too long (a sample)
    incomplete_count: int
    proceed: bool  # False: a duplicate or rejected event left nothing new to do


class LockState(Payload):
    acquired: bool
    holder: str
    held_since: str
    expires_at: str


class Lease(Payload):
    owner: str
    expires_at: str


class PlanItem(Payload):
    step_id: str
    attempt: int
    mode: str
    months: List[str]
    request: Dict[str, Any]  # StartJobRun in Step Functions' casing (infra.workflow.RUN_JOB_PARAMETERS)
    result_uri: str
    step: Optional[Dict[str, Any]] = None  # the step itself, when small enough to travel inline
    step_uri: Optional[str] = None  # else where it was written


class Plan(Payload):
    steps: List[PlanItem]
    count: int
    deferred: int  # planned but left for the next Plan (payload bound)
    newest_summarised: str
    modes: List[str]
    parked: List[str]
    parked_count: int


class Recorded(Payload):
    outcome: Verdict  # FAILED stops the run; REJECTED re-queues the siblings and goes on
    step_id: str
    mode: str
    months: List[str]
    job_run_id: str
    log_uri: str
    cloudwatch_logs: str
    dashboard_url: str
    batches: Dict[str, str]  # a sample of batch -> new state
    batch_states: Dict[str, int]
    detail: str
    rejected: Dict[str, str]
    rejected_count: int
    report: Dict[str, Any]
    usage: Dict[str, float]  # billed vCPU-, memory-, storage-hours and seconds (GetJobRun)


class Finished(Payload):
    owner: str
    outcome: str


class Failure(Payload):
    owner: str
    failed: List[str]
    requeued: List[str]
    message: str  # the notification's text


def at(path: str, model: Type[BaseModel], *fields: str) -> str:
    """``path`` + ``.field...``, each field checked against ``model`` (nested models followed)."""
    current: Any = model
    for name in fields:
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or name not in current.model_fields:
            raise KeyError(f"{name!r} is not a field of {getattr(current, '__name__', current)}")
        annotation = current.model_fields[name].annotation
        current = annotation if isinstance(annotation, type) else None
        path += f".{name}"
    return path
