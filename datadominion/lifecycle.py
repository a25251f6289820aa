"""A batch's life in the ledger, shared by the state machine's tasks and the local loop:

    register (new markers) -> start a step (RUNNING, attempt) -> apply its outcome
    (DONE / REJECTED / back in the queue / FAILED) ; FAILED max_attempts times -> parked
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable, Dict, List, Optional, Sequence

from datadominion.jobs import JobOutcome
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
    StepRecord,
)
from datadominion.registration import ManifestSink, RegisterOutcome, find_markers, register_marker
from datadominion.steps import Step
from datadominion.storage import BatchStorage, StoredObject


def register_all(storage: BatchStorage, ledger: Ledger, now: datetime, tolerance: int, manifests: ManifestSink,
                 listing: Optional[Sequence[StoredObject]] = None) -> List[RegisterOutcome]:
    """Register every marker the ledger does not know yet (the sweep and the local poller).
    Known batches are skipped from one ledger listing, not looked up one by one."""
    known = {b.batch_key for b in ledger.batches()}
    unseen = [key for key in find_markers(storage, listing) if not _known(key, known)]
    return [register_marker(key, storage, ledger, now, tolerance, manifests) for key in unseen]


def _known(marker_key: str, known: set) -> bool:
    try:
        return parse_marker_key(marker_key).batch_key in known
    except BatchKeyError:
        return f"invalid/{marker_key}" in known


def apply_outcome(ledger: Ledger, step: Step, outcome: JobOutcome, now: datetime,
                  on_rejected: Callable[[BatchRecord], None] = lambda record: None) -> Dict[str, str]:
    """Record a step's outcome on each of its batches; returns batch_key -> new state.
    ``on_rejected`` hears each batch that became REJECTED (the producer's note)."""
    states = {}
    where = {"job_run_id": outcome.job_run_id, "log_uri": outcome.log_uri,
             "cloudwatch_logs": outcome.cloudwatch_logs, "dashboard_url": outcome.dashboard_url}
    for batch in step.batches:
        record = ledger.get(batch.batch_key)
        if record is None:
            continue
        if batch.batch_key in outcome.rejected:
            new = record.moved(REJECTED, now, reason=outcome.rejected[batch.batch_key], **where)
        elif outcome.succeeded:
            new = record.moved(DONE, now, reason="", **where)
        elif outcome.rejected:
            # Another batch of the step was bad; this one goes back in the queue untouched.
            new = record.moved(REGISTERED, now, reason="re-queued: another batch in its step was rejected")
        else:
            new = record.moved(FAILED, now, reason=outcome.detail or "job failed", **where)
        ledger.update(new)
        states[batch.batch_key] = new.state
        if new.state == REJECTED:
            on_rejected(new)
    ledger.record_step(step_record(step, outcome, states, now))
    return states


def step_record(step: Step, outcome: JobOutcome, states: Dict[str, str], now: datetime) -> StepRecord:
    """The ledger's line for a step: its outcome, what the job reported and what it cost."""
    if not outcome.succeeded:
        verdict = REJECTED if outcome.rejected else FAILED
    else:
        verdict = REJECTED if states and set(states.values()) == {REJECTED} else DONE
    report = dict(outcome.report) if outcome.succeeded else {"error": outcome.detail[:2000]}
    return StepRecord(step.step_id, step.run_id, step.mode, step.months, now, verdict, outcome.job_run_id,
                      step.notes, report, dict(outcome.usage))


def maintenance_once(ledger: Ledger, run_id: str, reasons: Sequence[str]) -> List[str]:
    """At most one maintenance step per run: a run that already maintained (even if a table is
    still over a threshold, or the job did not get to mark it) plans none again."""
    newest = ledger.steps(1, mode="maintain")
    return [] if newest and newest[0].run_id == run_id else list(reasons)


@dataclass(frozen=True)
class RunPolicy:
    """How runs treat batches: the one home of these defaults (the environment config, the
    Lambdas' settings and local mode all start from them)."""

    tolerance_months: int = 1  # months after the current one a batch may be for
    lease_seconds: int = 1800  # the lock's lease; renewed before each step (AWS: > the job timeout)
    max_attempts: int = 3  # failed attempts before a batch is parked
    incomplete_after_hours: int = 6  # a batch folder with data but no _SUCCESS for longer is reported


MAX_ATTEMPTS = RunPolicy.max_attempts


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


