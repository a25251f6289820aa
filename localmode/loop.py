"""The local orchestration loop (`datadominion process`): the same lifecycle as the state
machine, in one process.

    register markers -> take the lock -> plan -> run each step in order (renewing the lease
    before each), recording the outcome -> plan again until nothing is pending -> release
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence

from datadominion.jobs import JobOutcome, JobRunner
from datadominion.ledger import DONE, FAILED, REGISTERED, REJECTED, Ledger, LockLost, RunRecord
from datadominion.lifecycle import (
    MAX_ATTEMPTS,
    apply_outcome,
    parked_batches,
    pending_batches,
    register_all,
    start_step,
)
from datadominion.planning import plan_steps
from datadominion.registration import ManifestSink
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
