"""Step Functions caps a state at 256 KiB and `States.DataLimitExceeded` cannot be caught: an
execution that crosses it dies holding the lock with batches RUNNING, and every later run
fails the same way. Every payload the state machine carries must stay well under the cap
whatever is pending: here the worst cases, through the real tasks over the SQLite ledger."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Dict, List, Optional

import pytest

from datadominion import run_tasks
from datadominion.adapters.local_storage import LocalStorage, write_local_text
from datadominion.adapters.sqlite_ledger import SqliteLedger
from datadominion.job_request import JobSettings
from datadominion.ledger import DONE, RUNNING, BatchRecord
from datadominion.lifecycle import RunPolicy
from datadominion.registration import ManifestSink
from datadominion.run_tasks import PLAN_ITEMS_BUDGET
from tests.support.objects import Objects

NOW = datetime(2031, 6, 15, tzinfo=timezone.utc)
STATE_LIMIT = 256 * 1024
HEADROOM = STATE_LIMIT // 2  # what a whole execution state may use: half the cap
POLICY = RunPolicy(tolerance_months=1, lease_seconds=3600)
SETTINGS = JobSettings(
    application_id="00fabcdefghijklm", execution_role_arn="arn:aws:iam::123456789012:role/" + "r" * 60,
    entry_point="s3://" + "a" * 63 + "/jobs/entrypoint.py", py_files="s3://" + "a" * 63 + "/jobs/datadominion-job.zip",
    dependencies="s3://" + "a" * 63 + "/jobs/job-deps.zip", config_uri="s3://" + "a" * 63 + "/configs/pipeline.json",
    warehouse="s3://" + "w" * 63 + "/", log_uri="s3://" + "a" * 63 + "/emr-logs/",
    result_prefix="s3://" + "a" * 63 + "/job-results/", timeout_minutes=720, tags={"product": "datadominion"})
LONG_ID = "feed-" + "x" * 118  # batch ids may be 128 characters


def months(count: int, start: int = 2020) -> List[str]:
    return [f"{start + i // 12}-{i % 12 + 1:02d}" for i in range(count)]


def pending(ledger: SqliteLedger, month_list: List[str], batches_per_month: int) -> None:
    for month in month_list:
        for i in range(batches_per_month):
            batch_id = f"{LONG_ID[:120]}-{i:04d}"
            ledger.register(BatchRecord(
                batch_key=f"{month}/{batch_id}", month=month, batch_id=batch_id, state="REGISTERED",
                location=f"s3://{'l' * 63}/accounts_all/rpt_as_of_mo={month}/{batch_id}/", arrived_at=NOW,
                updated_at=NOW))


def size(value: object) -> int:
    return len(json.dumps(value))


def drain(ledger: SqliteLedger, newest: Optional[str], objects: Objects) -> List[Dict[str, object]]:
    """Plan -> (every step succeeds) -> Plan ... as the state machine loops; returns each plan."""
    plans = []
    ledger.acquire_lock("exec-1", NOW, 3600)
    while True:
        plan = run_tasks.plan(ledger, "exec-1", NOW, newest_summarised=newest, settings=SETTINGS, policy=POLICY,
                              write_text=objects.write)
        if not plan["steps"]:
            return plans
        plans.append(plan)
        for item in plan["steps"]:
            step = run_tasks.item_step(item, objects.read)
            for b in step.batches:
                ledger.update(ledger.get(b.batch_key).moved(DONE, NOW))
            newest = max([newest or "", *step.months])


@pytest.mark.parametrize("month_count, per_month, summarised", [
    (100, 1, "2019-12"),  # 100 small forward months
    (100, 50, "2019-12"),  # 100 forward months of 50 long-named batches (each step is a file)
    (100, 50, None),  # an initial load of 5,000 batches in one step
    (40, 3, "2025-01"),  # backfills (12 months a step) then forward months
])
def test_every_plan_stays_far_below_the_state_limit_and_the_loop_drains_everything(tmp_path, month_count, per_month,
                                                                                  summarised):
    ledger, objects = SqliteLedger(tmp_path / "ledger.db"), Objects()
    pending(ledger, months(month_count), per_month)
    plans = drain(ledger, summarised, objects)
    sizes = [size(p) for p in plans]
    print(f"{month_count} months x {per_month} batches: {len(plans)} plan(s), largest {max(sizes)} bytes")
    assert max(sizes) <= PLAN_ITEMS_BUDGET + 4096 < HEADROOM
    assert all(size(item) < 32 * 1024 for p in plans for item in p["steps"])
    assert ledger.batches([RUNNING]) == [] and len(ledger.batches([DONE])) == month_count * per_month
    started = [item["step_id"] for p in plans for item in p["steps"]]
    assert len(started) == len(set(started))  # each step started once


def test_a_sweep_registering_thousands_of_batches_and_a_huge_step_record_stay_small(tmp_path):
    landing = tmp_path / "landing"
    for month in months(50):
        for i in range(100):
            folder = landing / "accounts_all" / f"rpt_as_of_mo={month}" / f"{LONG_ID[:120]}-{i:04d}"
            folder.mkdir(parents=True)
            (folder / "part-0.parquet").write_bytes(b"PAR1" + bytes(8) + b"PAR1")
            (folder / "_SUCCESS").write_bytes(b"")
    (landing / "accounts_all" / "rpt_as_of_mo=2020-01" / "broken").mkdir()
    (landing / "accounts_all" / "rpt_as_of_mo=2020-01" / "broken" / "_SUCCESS").write_bytes(b"")
    ledger = SqliteLedger(tmp_path / "ledger.db")
    manifests = ManifestSink((tmp_path / "manifests").as_uri(), write_local_text)
    registration = run_tasks.register({"sweep": True}, LocalStorage(landing), ledger, NOW, POLICY, manifests)
    assert registration["registered_count"] == 5000 and len(registration["registered"]) == 20
    assert registration["rejected_count"] == 1
    objects = Objects()
    ledger.acquire_lock("exec-1", NOW, 3600)
    plan = run_tasks.plan(ledger, "exec-1", NOW, newest_summarised=None, settings=SETTINGS, policy=POLICY,
                          write_text=objects.write)
    [item] = plan["steps"]
    assert "step_uri" in item and "step" not in item
    result_uri = item["result_uri"]
    objects.write(result_uri, json.dumps({"state": "SUCCESS", "report": {
        "batches_appended": [f"k{i}" for i in range(5000)], "rows_ingested": 1}}))
    recorded = run_tasks.record(ledger, item, {"JobRunId": "00f1"}, None, SETTINGS, objects.read, NOW)
    assert recorded["batch_states"] == {DONE: 5000} and recorded["report"]["batches_appended_count"] == 5000
    state = {"registration": {"value": registration}, "lock": {"value": {"acquired": True}},
             "plan": {"value": plan}, "recorded": {"value": recorded}}
    print(f"registration {size(registration)} B, plan {size(plan)} B, record {size(recorded)} B, "
          f"whole state {size(state)} B")
    assert size(state) < HEADROOM and size(recorded) < 16 * 1024
