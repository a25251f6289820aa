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
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from datadominion.change_feed import amendment_event, describe_event
from datadominion.feedback import leave_rejection_note
from datadominion.jobs import JobOutcome, JobRunner
from datadominion.ledger import DONE, FAILED, REGISTERED, REJECTED, Ledger, LockLost, RunRecord
from datadominion.lifecycle import (
    RunPolicy,
    apply_outcome,
    maintenance_once,
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
DEFAULT_POLICY = RunPolicy()
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
    policy: RunPolicy = DEFAULT_POLICY,
    wait_seconds: float = 600.0,
    rerun_months: Sequence[str] = (),
    clock: Clock = utc_now,
    notify: Notify = print,
    owner: Optional[str] = None,
    retry_failed: bool = False,
    maintain: bool = False,
    maintenance_due: Callable[[], List[str]] = lambda: [],
) -> ProcessResult:
    """Register every complete batch, then apply everything pending, in month order; then
    maintain the tables if ``maintain`` asks or ``maintenance_due`` says it is due."""
    started = time.monotonic()
    run = LocalRun(ledger, storage, runner, newest_summarised, policy, clock, notify,
                   ProcessResult(run_id=owner or f"local-{uuid.uuid4().hex[:12]}"), retry_failed, maintenance_due)
    run.register(manifests)
    acquire(ledger, run.result.run_id, clock, policy.lease_seconds, wait_seconds, notify)
    run.apply_pending(rerun_months, maintain)
    run.report_parked()
    run.result.seconds = round(time.monotonic() - started, 2)
    return run.result


@dataclass
class LocalRun:
    """One `process` run: what it registered, applied, rejected and failed."""

    ledger: Ledger
    storage: BatchStorage
    runner: JobRunner
    newest_summarised: Callable[[], Optional[str]]
    policy: RunPolicy
    clock: Clock
    notify: Notify
    result: ProcessResult
    retry_failed: bool = False
    maintenance_due: Callable[[], List[str]] = lambda: []
    # Batches pending at the start (or arriving meanwhile) are tried once per run.
    tried: Set[str] = field(default_factory=set)

    def register(self, manifests: ManifestSink) -> None:
        registrations = register_all(self.storage, self.ledger, self.clock(), self.policy.tolerance_months, manifests)
        for registration in registrations:
            if registration.status == "registered":
                self.result.registered.append(registration.batch_key)
            elif registration.status == "rejected":
                self.result.rejected[registration.batch_key] = registration.reason
                self.notify(f"REJECTED {registration.batch_key}: {registration.reason}")
        if self.result.registered:
            self.notify(f"registered {len(self.result.registered)} new batch(es)")

    def apply_pending(self, rerun_months: Sequence[str], maintain: bool = False) -> None:
        """Plan and run until nothing is pending or a step fails; then record the run and let go
        of the lock whatever happened. The operator's re-run and maintenance go in the first plan."""
        run_started, outcome = self.clock(), "succeeded"
        try:
            reruns, asked = list(rerun_months), ["requested by the operator"] if maintain else []
            while self.one_pass(reruns, asked):
                reruns, asked = [], []
        except BaseException as exc:
            outcome = f"aborted: {type(exc).__name__}"
            raise
        finally:
            if outcome == "succeeded" and not self.result.ok:
                outcome = "finished with problems"
            self.ledger.record_run(RunRecord(self.result.run_id, run_started, self.clock(), outcome,
                                             steps=tuple(str(s["step_id"]) for s in self.result.steps)))
            self.ledger.release_lock(self.result.run_id)

    def one_pass(self, reruns: Sequence[str], maintain: Sequence[str] = ()) -> bool:
        """Plan what is pending and run it in order; True to plan again (something was applied,
        or a batch was rejected and its siblings wait), False when done or stopped by a failure."""
        pending = [b for b in pending_batches(self.ledger, self.policy.max_attempts, self.retry_failed)
                   if b.batch_key not in self.tried]
        steps = plan_steps(pending, self.newest_summarised(), self.result.run_id, reruns,
                           maintain_reasons=maintenance_once(self.ledger, self.result.run_id,
                                                             list(maintain) + self.maintenance_due()))
        for step in steps:
            verdict = self.run_step(step)
            if verdict != DONE:
                return verdict == REJECTED  # re-plan after a rejection; a failure stops the run
        return bool(steps)

    def run_step(self, planned: Step) -> str:
        """Renew the lease, run one step and record it; returns DONE, REJECTED or FAILED."""
        run_id = self.result.run_id
        if not self.ledger.renew_lock(run_id, self.clock(), self.policy.lease_seconds):
            raise LockLost(f"run {run_id} no longer holds the lock; stopped before the next step")
        self.notify(_describe(planned))
        step = start_step(self.ledger, planned, self.clock())
        self.tried.update(b.batch_key for b in step.batches)
        outcome = self.runner.run(step)
        states = apply_outcome(self.ledger, step, outcome, self.clock(),
                               on_rejected=lambda record: leave_rejection_note(self.storage, record))
        self.result.steps.append({"step_id": step.step_id, "mode": step.mode, "months": list(step.months),
                                  "state": outcome.state, "report": outcome.report})
        self._record_problems(step, outcome, states)
        if outcome.succeeded:
            self.result.done += [k for k, s in states.items() if s == DONE]
            self.notify(_describe_report(outcome))
            event = amendment_event(outcome.report, step.step_id, step.mode, step.months, "local")
            if event is not None:  # locally the step's amended-history event is this line
                self.notify("  " + describe_event(event))
            return DONE
        return REJECTED if outcome.rejected else FAILED

    def _record_problems(self, step: Step, outcome: JobOutcome, states: Dict[str, str]) -> None:
        for key, state in states.items():
            if state == REJECTED:
                self.result.rejected[key] = outcome.rejected[key]
                self.notify(f"REJECTED {key}: {outcome.rejected[key]}")
            elif state == FAILED:
                self.result.failed[key] = outcome.detail
            elif state == REGISTERED:
                self.tried.discard(key)  # a sibling of a rejected batch: tried again in the re-plan
        if not outcome.rejected and not outcome.succeeded:  # later months wait: months are applied in order
            self.notify(f"FAILED step {step.mode} {', '.join(step.months)}: {outcome.detail}")
            self.result.failed.setdefault(f"step {step.step_id[:12]}", outcome.detail)

    def report_parked(self) -> None:
        self.result.parked = [b.batch_key for b in parked_batches(self.ledger, self.policy.max_attempts)]
        for key in self.result.parked:
            self.notify(f"PARKED {key}: failed {self.policy.max_attempts} times; fix the cause, "
                        "then process --retry-failed")


def _describe(step: Step) -> str:
    months = step.months[0] if len(step.months) == 1 else f"{step.months[0]}..{step.months[-1]} ({len(step.months)})"
    why = f" - {step.notes[0]}" if step.notes else ""
    return f"step {step.mode:8s} {months}: {len(step.batches)} batch(es){why}"


def _describe_report(outcome: JobOutcome) -> str:
    r = outcome.report
    if not r:
        return "  done"
    if r.get("mode") == "maintain":
        return "  done in {:.1f}s: {}".format(r.get("seconds", 0), "; ".join(
            f"{table} data files {t['before']['data_files']}->{t['after']['data_files']}, delete files "
            f"{t['before']['delete_files']}->{t['after']['delete_files']}, snapshots "
            f"{t['before']['snapshots']}->{t['after']['snapshots']}" for table, t in r.get("maintenance", {}).items()))
    classes = ", ".join(f"{k}={v}" for k, v in sorted(dict(r.get("accounts_by_class", {})).items()))
    return (f"  done in {r.get('seconds', 0):.1f}s: ingested {r.get('rows_ingested', 0)} rows, "
            f"{r.get('changed_records', 0)} changed records, {r.get('summary_rows_written', 0)} summary rows "
            f"written, accounts [{classes}]")
