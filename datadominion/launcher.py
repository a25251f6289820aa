"""The launcher's flow, shared by the local orchestrator and (piece by piece) the Lambdas:

    register markers -> take the lock -> plan -> run each step in order, recording the
    outcome -> plan again until nothing is pending -> release the lock
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence

from datadominion.jobs import JobOutcome, JobRunner
from datadominion.landing import BatchKeyError, parse_marker_key
from datadominion.ledger import (
    DONE,
    FAILED,
    PENDING_STATES,
    REGISTERED,
    REJECTED,
    RUNNING,
    BatchRecord,
    Ledger,
    LockLost,
    RunRecord,
)
from datadominion.planning import plan_steps
from datadominion.registration import ManifestSink, RegisterOutcome, find_markers, register_marker
from datadominion.steps import Step
from datadominion.storage import BatchStorage

Clock = Callable[[], datetime]
Notify = Callable[[str], None]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class LockBusy(RuntimeError):
    """Another run holds the lock; contention is expected, not a failure."""


@dataclass
class ProcessResult:
    run_id: str
    registered: List[str] = field(default_factory=list)
    rejected: Dict[str, str] = field(default_factory=dict)
    done: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    steps: List[Dict[str, Any]] = field(default_factory=list)
    parked: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed


def register_all(storage: BatchStorage, ledger: Ledger, now: datetime, tolerance: int, manifests: ManifestSink
                 ) -> List[RegisterOutcome]:
    """Register every marker the ledger does not know yet (the sweep and the local poller).
    Known batches are skipped from one ledger listing, not looked up one by one."""
    known = {b.batch_key for b in ledger.batches()}
    unseen = [key for key in find_markers(storage) if not _known(key, known)]
    return [register_marker(key, storage, ledger, now, tolerance, manifests) for key in unseen]


def _known(marker_key: str, known: set) -> bool:
    try:
        return parse_marker_key(marker_key).batch_key in known
    except BatchKeyError:
        return f"invalid/{marker_key}" in known


def acquire(ledger: Ledger, owner: str, clock: Clock, lease_seconds: int, wait_seconds: float,
            notify: Notify, poll_seconds: float = 2.0) -> None:
    deadline = time.monotonic() + wait_seconds
    told = False
    while not ledger.acquire_lock(owner, clock(), lease_seconds):
        holder = ledger.lock()
        if time.monotonic() >= deadline:
            raise LockBusy(f"a run is in progress (lock held by {holder.owner if holder else '?'} "
                           f"until {holder.expires_at.isoformat() if holder else '?'}); try again later")
        if not told:
            notify(f"waiting for the lock held by {holder.owner if holder else '?'} ...")
            told = True
        time.sleep(poll_seconds)


def apply_outcome(ledger: Ledger, step: Step, outcome: JobOutcome, now: datetime) -> Dict[str, str]:
    """Record a step's outcome on each of its batches; returns batch_key -> new state."""
    states = {}
    where = {"job_run_id": outcome.job_run_id, "log_uri": outcome.log_uri,
             "cloudwatch_logs": outcome.cloudwatch_logs, "dashboard_url": outcome.dashboard_url}
    for batch in step.batches:
        record = ledger.get(batch.batch_key)
        if record is None:
            continue
        if outcome.succeeded:
            new = record.moved(DONE, now, reason="", **where)
        elif batch.batch_key in outcome.rejected:
            new = record.moved(REJECTED, now, reason=outcome.rejected[batch.batch_key], **where)
        elif outcome.rejected:
            # Another batch of the step was bad; this one goes back in the queue untouched.
            new = record.moved(REGISTERED, now, reason="re-queued: another batch in its step was rejected")
        else:
            new = record.moved(FAILED, now, reason=outcome.detail or "job failed", **where)
        ledger.update(new)
        states[batch.batch_key] = new.state
    return states


MAX_ATTEMPTS = 3


def pending_batches(ledger: Ledger, max_attempts: int = MAX_ATTEMPTS, retry_failed: bool = False
                    ) -> List[BatchRecord]:
    """Batches to plan. Call it holding the lock: then a RUNNING batch was left behind by a run
    that crashed (its lease expired), and is planned again with the same attempt number.
    A batch that FAILED ``max_attempts`` times is parked (not retried automatically, so a
    deterministic failure does not rerun a costly job every sweep) until ``retry_failed``."""
    return [b for b in ledger.batches(PENDING_STATES + (RUNNING,))
            if retry_failed or b.state != FAILED or b.attempts < max_attempts]


def parked_batches(ledger: Ledger, max_attempts: int = MAX_ATTEMPTS) -> List[BatchRecord]:
    return [b for b in ledger.batches([FAILED]) if b.attempts >= max_attempts]


def start_step(ledger: Ledger, step: Step, now: datetime) -> Step:
    """Mark the step's batches RUNNING; returns the step with its attempt number.

    The attempt grows only when a new or FAILED batch starts again, so the client token of
    a step orphaned while RUNNING stays the same and re-attaches to the job already started.
    """
    attempt = 1
    for batch in step.batches:
        record = ledger.get(batch.batch_key)
        if record is None:
            continue
        attempts = record.attempts if record.state == RUNNING else record.attempts + 1
        ledger.update(record.moved(RUNNING, now, step_id=step.step_id, attempts=attempts))
        attempt = max(attempt, attempts)
    return replace(step, attempt=attempt)


def process(
    storage: BatchStorage,
    ledger: Ledger,
    runner: JobRunner,
    newest_summarised: Callable[[], Optional[str]],
    *,
    manifests: ManifestSink,
    tolerance_months: int = 1,
    lease_seconds: int = 1800,
    wait_seconds: float = 600.0,
    rerun_months: Sequence[str] = (),
    clock: Clock = utc_now,
    notify: Notify = print,
    owner: Optional[str] = None,
    max_attempts: int = MAX_ATTEMPTS,
    retry_failed: bool = False,
) -> ProcessResult:
    """Register every complete batch, then apply everything pending, in month order."""
    started = time.monotonic()
    run_id = owner or f"local-{uuid.uuid4().hex[:12]}"
    result = ProcessResult(run_id=run_id)
    for registration in register_all(storage, ledger, clock(), tolerance_months, manifests):
        if registration.status == "registered":
            result.registered.append(registration.batch_key)
        elif registration.status == "rejected":
            result.rejected[registration.batch_key] = registration.reason
            notify(f"REJECTED {registration.batch_key}: {registration.reason}")
    if result.registered:
        notify(f"registered {len(result.registered)} new batch(es)")
    acquire(ledger, run_id, clock, lease_seconds, wait_seconds, notify)
    run_started = clock()
    outcome_text = "succeeded"
    try:
        # Only batches pending at the start (or arriving meanwhile) are tried, each once per run.
        tried: set = set()
        reruns = list(rerun_months)
        while True:
            pending = [b for b in pending_batches(ledger, max_attempts, retry_failed) if b.batch_key not in tried]
            steps = plan_steps(pending, newest_summarised(), run_id, reruns)
            reruns = []
            if not steps:
                break
            stop = False
            for step in steps:
                if not ledger.renew_lock(run_id, clock(), lease_seconds):
                    raise LockLost(f"run {run_id} no longer holds the lock; stopped before the next step")
                notify(_describe(step))
                step = start_step(ledger, step, clock())
                tried.update(b.batch_key for b in step.batches)
                outcome = runner.run(step)
                states = apply_outcome(ledger, step, outcome, clock())
                result.steps.append({"step_id": step.step_id, "mode": step.mode, "months": list(step.months),
                                     "state": outcome.state, "report": outcome.report})
                if outcome.succeeded:
                    result.done += [k for k, s in states.items() if s == DONE]
                    notify(_describe_report(outcome))
                    continue
                for key, state in states.items():
                    if state == REJECTED:
                        result.rejected[key] = outcome.rejected[key]
                        notify(f"REJECTED {key}: {outcome.rejected[key]}")
                    elif state == FAILED:
                        result.failed[key] = outcome.detail
                    elif state == REGISTERED:
                        tried.discard(key)
                if not outcome.rejected:
                    notify(f"FAILED step {step.mode} {', '.join(step.months)}: {outcome.detail}")
                    result.failed.setdefault(f"step {step.step_id[:12]}", outcome.detail)
                    stop = True  # later months must wait: months are applied in order
                break  # re-plan after any failure
            if stop:
                break
    except BaseException as exc:
        outcome_text = f"aborted: {type(exc).__name__}"
        raise
    finally:
        if result.failed or result.rejected:
            outcome_text = "finished with problems" if outcome_text == "succeeded" else outcome_text
        ledger.record_run(RunRecord(run_id, run_started, clock(), outcome_text,
                                    steps=tuple(str(s["step_id"]) for s in result.steps)))
        ledger.release_lock(run_id)
    result.parked = [b.batch_key for b in parked_batches(ledger, max_attempts)]
    for key in result.parked:
        notify(f"PARKED {key}: failed {max_attempts} times; fix the cause, then process --retry-failed")
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _describe(step: Step) -> str:
    months = step.months[0] if len(step.months) == 1 else f"{step.months[0]}..{step.months[-1]} ({len(step.months)})"
    why = f" - {step.notes[0]}" if step.notes else ""
    return f"step {step.mode:8s} {months}: {len(step.batches)} batch(es){why}"


def _describe_report(outcome: JobOutcome) -> str:
    r = outcome.report
    if not r:
        return "  done"
    classes = ", ".join(f"{k}={v}" for k, v in sorted(dict(r.get("accounts_by_class", {})).items()))
    return (f"  done in {r.get('seconds', 0):.1f}s: ingested {r.get('rows_ingested', 0)} rows, "
            f"{r.get('changed_records', 0)} changed records, {r.get('summary_rows_written', 0)} summary rows "
            f"written, accounts [{classes}]")
