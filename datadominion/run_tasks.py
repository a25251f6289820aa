"""The state machine's tasks (Register, Lock, Plan, Record, Finish, Fail) as plain functions
over the ports. The Lambdas in ``lambdas/`` only parse, wire adapters and call these.

Everything exchanged with the state machine is JSON-friendly dicts.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Optional, Sequence

from datadominion.feedback import leave_rejection_note
from datadominion.job_request import (
    JobSettings,
    cloudwatch_location,
    for_step_functions,
    job_outcome,
    log_location,
    needs_step_file,
    result_uri,
    start_job_run_request,
    step_uri,
    store_step_if_large,
)
from datadominion.landing import SOURCE_PREFIX
from datadominion.ledger import DONE, FAILED, REGISTERED, REJECTED, RUNNING, BatchRecord, Ledger, LockLost, RunRecord
from datadominion.lifecycle import (
    RunPolicy,
    apply_outcome,
    maintenance_once,
    parked_batches,
    pending_batches,
    register_all,
    start_step,
)
from datadominion.payloads import Failure, Finished, Lease, LockState, Plan, PlanItem, Recorded, Registration
from datadominion.planning import plan_steps
from datadominion.preview import DEFAULT_BYTES_PER_RECORD
from datadominion.preview import preview as planned_preview
from datadominion.registration import ManifestSink, find_incomplete, register_marker
from datadominion.run_input import parse_run_input
from datadominion.steps import BATCHLESS_MODES, Step
from datadominion.storage import BatchStorage

ReadText = Callable[[str], Optional[str]]
# Step Functions caps a state's input/output at 256 KiB and the failure cannot be caught: a
# Plan returns at most this many bytes of step items, and payloads carry samples of keys.
PLAN_ITEMS_BUDGET = 96 * 1024
MAX_STEPS_PER_PLAN = 24
ITEM_SIZE_MARGIN = 256  # the attempt number and token may grow a little once the step starts
SAMPLE_KEYS = 20
WriteText = Callable[[str, str], None]


def register(payload: Any, storage: BatchStorage, ledger: Ledger, now: datetime, policy: RunPolicy,
             manifests: ManifestSink) -> Dict[str, Any]:
    """Register the event's batch (or every marker, for a sweep). ``proceed`` is False when a
    duplicate or rejected event leaves nothing new to do: the execution ends there."""
    request = parse_run_input(payload, now)
    outcomes, stalled = [], []  # a preview registers nothing: it shows what is pending already
    if request.kind == "event" and not request.plan_only:
        outcomes = [register_marker(request.marker_key, storage, ledger, now, policy.tolerance_months, manifests)]
    elif request.kind == "sweep" and not request.plan_only:  # one listing of the landing area serves both
        listing = storage.list(SOURCE_PREFIX)
        outcomes = register_all(storage, ledger, now, policy.tolerance_months, manifests, listing)
        stalled = [b.folder for b in find_incomplete(storage, now, timedelta(hours=policy.incomplete_after_hours),
                                                     listing)]
    registered = [o.batch_key for o in outcomes if o.status == "registered"]
    rejected = {o.batch_key: o.reason for o in outcomes if o.status == "rejected"}
    duplicates = [o.batch_key for o in outcomes if o.status == "duplicate"]
    return Registration(
        kind=request.kind, rerun_months=list(request.rerun_months), retry_failed=request.retry_failed,
        maintain=request.kind == "maintain", plan_only=request.plan_only,
        registered=sample(registered), registered_count=len(registered),
        rejected=sample_map(rejected), rejected_count=len(rejected),
        duplicates=sample(duplicates), duplicate_count=len(duplicates),
        incomplete=sample(stalled), incomplete_count=len(stalled),
        proceed=request.kind != "event" or bool(registered) or request.plan_only,
    ).out()


def acquire_lock(ledger: Ledger, owner: str, now: datetime, policy: RunPolicy) -> Dict[str, Any]:
    acquired = ledger.acquire_lock(owner, now, policy.lease_seconds)
    holder = ledger.lock()
    return LockState(acquired=acquired, holder=holder.owner if holder else "",
                     held_since=holder.acquired_at.isoformat() if holder else "",
                     expires_at=holder.expires_at.isoformat() if holder else "").out()


def renew_lock(ledger: Ledger, owner: str, now: datetime, policy: RunPolicy, doing: str = "running a step"
               ) -> Dict[str, Any]:
    """Extend this run's lease before more work (each step, each Plan), or raise LockLost: a run
    whose lease expired and was taken over must stop, not keep writing beside the new holder."""
    if not ledger.renew_lock(owner, now, policy.lease_seconds):
        held = ledger.lock()
        raise LockLost(f"run {owner} no longer holds the lock (holder: {held.owner if held else 'nobody'}); "
                       f"stopped before {doing}")
    held = ledger.lock()
    return Lease(owner=owner, expires_at=held.expires_at.isoformat() if held else "").out()


def preview(ledger: Ledger, *, rows_by_month: Dict[str, int], bytes_per_record: Optional[float],
            policy: RunPolicy, history_length: int, rerun_months: Sequence[str] = (), retry_failed: bool = False,
            maintain_reasons: Sequence[str] = (), extra_pending: Sequence[BatchRecord] = ()) -> Dict[str, Any]:
    """What a run would do now, without the lock and without writing anything
    (datadominion/preview.py). ``extra_pending``: batches that would be registered first."""
    pending = list(pending_batches(ledger, policy.max_attempts, retry_failed)) + list(extra_pending)
    steps = planned_preview(pending, max(rows_by_month) if rows_by_month else None, rows_by_month,
                            bytes_per_record or DEFAULT_BYTES_PER_RECORD, ledger.steps(50), history_length,
                            rerun_months, maintain_reasons)
    for step in steps:  # bounded payload: a sample of each step's batches
        step["batch_count"], step["batches"] = len(step["batches"]), step["batches"][:SAMPLE_KEYS]
    return {"preview": True, "count": len(steps), "steps": steps[:MAX_STEPS_PER_PLAN * 4],
            "bytes_per_record": bytes_per_record or DEFAULT_BYTES_PER_RECORD,
            "estimated_from": "batch sizes / accounts_all bytes per record; summary month row counts; step history"}


def plan(ledger: Ledger, owner: str, now: datetime, *, newest_summarised: Optional[str], settings: JobSettings,
         policy: RunPolicy, write_text: WriteText, rerun_months: Sequence[str] = (), retry_failed: bool = False,
         maintain_reasons: Sequence[str] = ()) -> Dict[str, Any]:
    """Plan everything pending and start its steps: each item carries the step and its
    ready-made EMR Serverless request (Step Functions Parameters)."""
    renew_lock(ledger, owner, now, policy, doing="planning")
    steps = plan_steps(pending_batches(ledger, policy.max_attempts, retry_failed), newest_summarised, owner,
                       rerun_months, maintain_reasons=maintenance_once(ledger, owner, maintain_reasons))
    items: List[PlanItem] = []
    used = 0
    for planned in steps:
        # Only a bounded prefix is started; the rest stays pending for the next Plan (the
        # Plan -> Map -> Plan loop drains it), so no execution state nears the 256 KiB cap.
        size = len(json.dumps(step_item(settings, planned).out())) + ITEM_SIZE_MARGIN
        if items and (used + size > PLAN_ITEMS_BUDGET or len(items) >= MAX_STEPS_PER_PLAN):
            break
        step = start_step(ledger, planned, now)
        store_step_if_large(settings, step, write_text)
        items.append(step_item(settings, step))
        used += size
    parked = [] if retry_failed else [b.batch_key for b in parked_batches(ledger, policy.max_attempts)]
    return Plan(steps=items, count=len(items), deferred=len(steps) - len(items),
                newest_summarised=newest_summarised or "", modes=[i.mode for i in items],
                parked=sample(parked), parked_count=len(parked)).out()


def step_item(settings: JobSettings, step: Step) -> PlanItem:
    """One Map item: the step's identity and its ready-made EMR Serverless request. A step too
    large for a job argument is not repeated here either: Record reads it from ``step_uri``."""
    large = needs_step_file(step)
    return PlanItem(step_id=step.step_id, attempt=step.attempt, mode=step.mode, months=list(step.months),
                    request=for_step_functions(start_job_run_request(settings, step, step.attempt)),
                    result_uri=result_uri(settings, step, step.attempt),
                    step=None if large else step.to_dict(),
                    step_uri=step_uri(settings, step, step.attempt) if large else None)


def item_step(item: Dict[str, Any], read_text: ReadText) -> Step:
    if "step" in item:
        return Step.from_dict(item["step"])
    text = read_text(item["step_uri"])
    if text is None:
        raise FileNotFoundError(f"step file {item['step_uri']} of step {item['step_id']} is missing")
    return Step.from_json(text)


def sample(keys: Sequence[str], limit: int = SAMPLE_KEYS) -> List[str]:
    """At most ``limit`` keys: payloads carry examples and counts, never unbounded lists."""
    return list(keys[:limit])


def _job_run_id(job: Dict[str, Any]) -> str:
    for source in (job, job.get("JobRun") or {}, job.get("jobRun") or {}):
        for key in ("JobRunId", "jobRunId", "Id", "id"):
            if source.get(key):
                return str(source[key])
    return ""


def _failure(error: Dict[str, Any]) -> Dict[str, str]:
    """The job run id and the state details out of a failed task's Error/Cause."""
    cause_text = str(error.get("Cause") or "")
    try:
        cause = json.loads(cause_text)
    except ValueError:
        cause = {}
    cause = cause if isinstance(cause, dict) else {}
    details = cause.get("StateDetails") or cause.get("stateDetails") or cause.get("errorMessage") or cause_text
    return {"job_run_id": _job_run_id(cause), "state": str(cause.get("State") or cause.get("state") or "FAILED"),
            "detail": f"{error.get('Error', 'error')}: {details}"[:3000]}


def record(ledger: Ledger, item: Dict[str, Any], job: Optional[Dict[str, Any]], error: Optional[Dict[str, Any]],
           settings: JobSettings, read_text: ReadText, now: datetime,
           dashboard: Callable[[str], str] = lambda job_run_id: "", landing: Optional[BatchStorage] = None,
           usage: Callable[[str], Dict[str, float]] = lambda job_run_id: {}) -> Dict[str, Any]:
    """Record how a step ended on each of its batches, with where to look (S3 and CloudWatch
    logs, the job run's dashboard). ``outcome`` FAILED stops the run."""
    step = item_step(item, read_text)
    if error is None:
        job_run_id, state, details = _job_run_id(job or {}), "SUCCESS", ""
    else:
        failure = _failure(error)
        job_run_id, state, details = failure["job_run_id"], failure["state"], failure["detail"]
    logs = log_location(settings, job_run_id) if job_run_id else settings.log_uri
    outcome = job_outcome(job_run_id, state, details, logs, read_text(item["result_uri"]),
                          cloudwatch_location(settings, job_run_id), dashboard(job_run_id) if job_run_id else "",
                          usage(job_run_id) if job_run_id else {})
    notes = (lambda record: leave_rejection_note(landing, record)) if landing is not None else (lambda record: None)
    states = apply_outcome(ledger, step, outcome, now, on_rejected=notes)
    if step.mode in BATCHLESS_MODES:  # no batches to carry the outcome
        states = {f"{step.mode} {','.join(step.months)}": DONE if outcome.succeeded else FAILED}
    if outcome.succeeded:  # all batches rejected: nothing applied, but the run goes on
        verdict = REJECTED if states and set(states.values()) == {REJECTED} else DONE
    elif outcome.rejected:
        verdict = REJECTED  # the bad batch is out, its siblings are queued again: the run goes on
    else:
        verdict = FAILED
    return Recorded(
        outcome=verdict, step_id=step.step_id, mode=step.mode, months=list(step.months), job_run_id=job_run_id,
        log_uri=logs, cloudwatch_logs=outcome.cloudwatch_logs, dashboard_url=outcome.dashboard_url,
        batches=sample_map(states), batch_states=dict(Counter(states.values())), detail=outcome.detail[:2000],
        rejected=sample_map(outcome.rejected), rejected_count=len(outcome.rejected), report=compact(outcome.report),
        usage=outcome.usage,
    ).out()


def sample_map(values: Dict[str, str], limit: int = SAMPLE_KEYS) -> Dict[str, str]:
    return {k: str(v)[:500] for k, v in list(values.items())[:limit]}


def compact(report: Dict[str, Any]) -> Dict[str, Any]:
    """A job report for a payload: lists become a sample and their length."""
    out: Dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, list) and len(value) > SAMPLE_KEYS:
            out[key], out[f"{key}_count"] = value[:SAMPLE_KEYS], len(value)
        else:
            out[key] = value
    return out


def finish(ledger: Ledger, owner: str, started: datetime, now: datetime, outcome: str = "succeeded",
           detail: str = "") -> Dict[str, Any]:
    ledger.record_run(RunRecord(owner, started, now, outcome, detail))
    ledger.release_lock(owner)
    return Finished(owner=owner, outcome=outcome).out()


def fail(ledger: Ledger, owner: str, error: Dict[str, Any], started: datetime, now: datetime) -> Dict[str, Any]:
    """The failure path: steps this run started but never finished go back in the queue
    (the failed step's batches are already FAILED), the lock is released, and the message
    for the notification is returned."""
    try:
        requeued = _requeue_started_steps(ledger, owner, now)
        failed_batches = ledger.batches([FAILED])
        failed = [b.batch_key for b in failed_batches]
        more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
        message = (f"{_failure_headline(owner, error)}\n"
                   f"Failed batches: {failed[:20] or 'none'}{more}; re-queued: {len(requeued)}.\n"
                   + _where_to_look(failed_batches) + _what_it_cost(ledger, owner)
                   + "The next sweep retries them; see docs/runbook.md.")
        ledger.record_run(RunRecord(owner, started, now, "failed", message))
    finally:
        ledger.release_lock(owner)  # whatever else failed, the next run must not wait for the lease
    return Failure(owner=owner, failed=sample(failed), requeued=sample(requeued), message=message).out()


def _where_to_look(failed: Sequence[BatchRecord], limit: int = 3) -> str:
    """The newest failed job runs' logs and dashboards, for the notification."""
    lines = []
    for batch in sorted(failed, key=lambda b: b.updated_at or b.arrived_at, reverse=True)[:limit]:
        if batch.job_run_id:
            lines.append(f"  {batch.batch_key}: job run {batch.job_run_id}; logs {batch.log_uri}"
                         + (f"; CloudWatch {batch.cloudwatch_logs}" if batch.cloudwatch_logs else "")
                         + (f"; dashboard {batch.dashboard_url}" if batch.dashboard_url else ""))
    return ("Where to look:\n" + "\n".join(lines) + "\n") if lines else ""


def describe_usage(usage: Dict[str, float]) -> str:
    """e.g. "0.42 vCPU-h, 1.7 GB-h memory, 95 s" (AWS) or "12.3 s wall, 20.1 s CPU" (local)."""
    parts = {"vcpu_hours": "{:.3g} vCPU-h", "memory_gb_hours": "{:.3g} GB-h memory",
             "storage_gb_hours": "{:.3g} GB-h storage", "seconds": "{:.0f} s billed",
             "wall_seconds": "{:.1f} s wall", "cpu_seconds": "{:.1f} s CPU"}
    return ", ".join(parts[k].format(v) for k, v in usage.items() if k in parts) or "not reported"


def _what_it_cost(ledger: Ledger, owner: str, limit: int = 24) -> str:
    mine = [s for s in ledger.steps(limit) if s.run_id == owner]
    lines = [f"  {s.mode} {','.join(s.months)}: {s.outcome}, {describe_usage(s.usage)}" for s in mine]
    return ("Steps of this run and what they cost:\n" + "\n".join(lines) + "\n") if lines else ""


def _requeue_started_steps(ledger: Ledger, owner: str, now: datetime) -> List[str]:
    lock = ledger.lock()
    if lock is None or lock.owner != owner:  # RUNNING batches are ours only while we hold the lock
        return []
    requeued = []
    for batch in ledger.batches([RUNNING]):
        ledger.update(batch.moved(REGISTERED, now, reason=f"re-queued: run {owner} failed before this step ran"))
        requeued.append(batch.batch_key)
    return requeued


def release_after_failure(ledger: Ledger, owner: str, error: Dict[str, Any]) -> Dict[str, Any]:
    """The fallback when recording a failure failed: release the lock (RUNNING batches are
    re-planned by the next run, with the same client token) and say what happened."""
    ledger.release_lock(owner)
    message = (f"{_failure_headline(owner, error)}\nRecording the failure in the ledger failed as well; the lock "
               "was released and the next run re-plans what this run left RUNNING. See docs/runbook.md.")
    return Failure(owner=owner, failed=[], requeued=[], message=message).out()


def _failure_headline(owner: str, error: Dict[str, Any]) -> str:
    cause = str(error.get("Cause") or "")[:1500]
    return f"DataDominion run {owner} failed: {error.get('Error', 'error')}: {cause}"
