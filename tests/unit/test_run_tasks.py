"""The state machine's tasks over the local adapters (SQLite ledger, landing folder): the same
functions the Lambdas call, without AWS."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from datadominion import run_tasks
from datadominion.adapters.local_storage import LocalStorage, write_local_text
from datadominion.adapters.sqlite_ledger import SqliteLedger
from datadominion.job_request import JobSettings
from datadominion.ledger import DONE, FAILED, REGISTERED, REJECTED, RUNNING, LockLost
from datadominion.lifecycle import RunPolicy
from datadominion.registration import ManifestSink
from tests.support.objects import Objects

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=timezone.utc)
POLICY = RunPolicy(tolerance_months=1, lease_seconds=600, max_attempts=2)
SETTINGS = JobSettings(application_id="app", execution_role_arn="arn:aws:iam::123456789012:role/job",
                       entry_point="s3://a/jobs/entrypoint.py", py_files="s3://a/jobs/c.zip",
                       dependencies="s3://a/jobs/d.zip", config_uri="s3://a/configs/pipeline.json",
                       warehouse="s3://w/", log_uri="s3://a/emr-logs/", result_prefix="s3://a/job-results/",
                       timeout_minutes=60)
PARQUET_TAIL = bytes(8) + (0).to_bytes(4, "little") + b"PAR1"


@pytest.fixture
def world(tmp_path):
    landing = tmp_path / "landing"

    def land(month: str, batch_id: str = "b1") -> str:
        folder = landing / "accounts_all" / f"rpt_as_of_mo={month}" / batch_id
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"PAR1" + PARQUET_TAIL)
        (folder / "_SUCCESS").write_bytes(b"")
        return f"accounts_all/rpt_as_of_mo={month}/{batch_id}/_SUCCESS"

    class World:
        storage = LocalStorage(landing)
        ledger = SqliteLedger(tmp_path / "ledger.db")
        manifests = ManifestSink((tmp_path / "manifests").as_uri(), write_local_text)
        objects = Objects()

        def register(self, payload):
            return run_tasks.register(payload, self.storage, self.ledger, NOW, POLICY, self.manifests)

        def plan(self, owner="exec-1", newest=None, **options):
            return run_tasks.plan(self.ledger, owner, NOW, newest_summarised=newest, settings=SETTINGS,
                                  policy=POLICY, write_text=self.objects.write, **options)

        def record(self, item, result, error=None):
            self.objects.write(item["result_uri"], json.dumps(result))
            return run_tasks.record(self.ledger, item, None if error else {"JobRunId": "00f1"}, error, SETTINGS,
                                    self.objects.read, NOW, landing=self.storage)

    world = World()
    world.land = land
    return world


def test_register_an_event_then_the_same_event_again(world):
    key = world.land("2025-02")
    first = world.register({"detail": {"object": {"key": key}}})
    assert first["registered"] == ["2025-02/b1"] and first["proceed"] is True
    again = world.register({"detail": {"object": {"key": key}}})
    assert again["duplicate_count"] == 1 and again["proceed"] is False
    assert world.ledger.get("2025-02/b1").manifest.count == 1


def test_plan_needs_the_lock_and_starts_each_step_once(world):
    world.land("2025-01")
    world.land("2025-02")
    world.register({"sweep": True})
    with pytest.raises(LockLost):
        world.plan()
    assert run_tasks.acquire_lock(world.ledger, "exec-1", NOW, POLICY)["acquired"]
    assert not run_tasks.acquire_lock(world.ledger, "exec-2", NOW, POLICY)["acquired"]
    plan = world.plan(newest="2025-01")
    assert [(i["mode"], i["months"]) for i in plan["steps"]] == [("backfill", ["2025-01"]), ("forward", ["2025-02"])]
    assert {b.state for b in world.ledger.batches()} == {RUNNING}


def test_record_success_rejection_and_failure(world):
    for month in ("2025-01", "2025-02"):
        world.land(month)
    world.land("2025-02", "b2")
    world.register({"sweep": True})
    run_tasks.acquire_lock(world.ledger, "exec-1", NOW, POLICY)
    first, second = world.plan(newest="2024-12")["steps"]
    assert world.record(first, {"state": "SUCCESS", "report": {"rows_ingested": 3}})["outcome"] == DONE
    rejected = world.record(second, {"state": "REJECTED", "rejected": {"2025-02/b2": "rule 'null_key'"}},
                            error={"Error": "States.TaskFailed", "Cause": "{}"})
    assert rejected["outcome"] == REJECTED and rejected["rejected_count"] == 1
    note = json.loads((world.storage.root / "accounts_all/rpt_as_of_mo=2025-02/b2/_REJECTED.json").read_text())
    assert note["rule"] == "null_key" and note["batch_key"] == "2025-02/b2" and note["examples"] == []
    assert {b.batch_key: b.state for b in world.ledger.batches()} == {
        "2025-01/b1": DONE, "2025-02/b1": REGISTERED, "2025-02/b2": REJECTED}
    [retry] = world.plan(newest="2025-01")["steps"]
    failed = world.record(retry, {"state": "FAILED", "detail": "ExecutorLostFailure"},
                          error={"Error": "States.TaskFailed", "Cause": json.dumps({"JobRunId": "00f2"})})
    assert failed["outcome"] == FAILED and world.ledger.get("2025-02/b1").job_run_id == "00f2"


def test_fail_requeues_what_the_run_started_releases_the_lock_and_says_what_failed(world):
    for month in ("2025-01", "2025-02"):
        world.land(month)
    world.register({"sweep": True})
    run_tasks.acquire_lock(world.ledger, "exec-1", NOW, POLICY)
    first, _ = world.plan(newest="2024-12")["steps"]
    world.record(first, {"state": "FAILED"}, error={"Error": "States.TaskFailed", "Cause": "{}"})
    result = run_tasks.fail(world.ledger, "exec-1", {"Error": "DataDominion.StepFailed"}, NOW, NOW)
    assert result["requeued"] == ["2025-02/b1"] and result["failed"] == ["2025-01/b1"]
    assert "exec-1 failed" in result["message"] and world.ledger.lock() is None
    assert world.ledger.get("2025-02/b1").state == REGISTERED


def test_a_run_that_lost_its_lock_cannot_renew_it_or_requeue_the_new_holders_work(world):
    world.land("2025-01")
    world.register({"sweep": True})
    run_tasks.acquire_lock(world.ledger, "exec-1", NOW, POLICY)
    world.plan(newest="2024-12")
    later = NOW + timedelta(seconds=POLICY.lease_seconds + 1)
    assert run_tasks.acquire_lock(world.ledger, "exec-2", later, POLICY)["acquired"]
    with pytest.raises(LockLost, match="exec-2"):
        run_tasks.renew_lock(world.ledger, "exec-1", later, POLICY)
    result = run_tasks.fail(world.ledger, "exec-1", {"Error": "LockLost"}, NOW, later)
    assert result["requeued"] == [] and world.ledger.lock().owner == "exec-2"
    assert world.ledger.get("2025-01/b1").state == RUNNING  # the new holder re-plans it


def test_a_rejection_note_carries_the_jobs_rule_and_examples(world):
    world.land("2025-01")
    world.register({"sweep": True})
    run_tasks.acquire_lock(world.ledger, "exec-1", NOW, POLICY)
    [step] = world.plan(newest="2024-12")["steps"]
    reason = "\n".join(["batch 2025-01/b1 (x) rejected: rule 'non-null cons_acct_key': 2 row(s) have no key"]
                       + [f"  e.g. row {n}" for n in range(12)])
    world.record(step, {"state": "REJECTED", "rejected": {"2025-01/b1": reason}},
                 error={"Error": "States.TaskFailed", "Cause": "{}"})
    note = json.loads((world.storage.root / "accounts_all/rpt_as_of_mo=2025-01/b1/_REJECTED.json").read_text())
    assert note["rule"] == "non-null cons_acct_key" and note["reason"].endswith("2 row(s) have no key")
    assert note["examples"] == [f"row {n}" for n in range(10)]  # bounded


def test_a_run_maintains_at_most_once_even_if_a_table_stays_over_a_threshold(world):
    from datadominion.jobs import JobOutcome
    from datadominion.lifecycle import apply_outcome
    from datadominion.steps import Step

    run_tasks.acquire_lock(world.ledger, "exec-1", NOW, POLICY)
    [item] = world.plan(newest="2025-01", maintain_reasons=["summary: 900 delete files > 200"])["steps"]
    assert item["mode"] == "maintain"
    step = Step.from_dict(item["step"])
    apply_outcome(world.ledger, step, JobOutcome("SUCCESS", report={"maintenance": {"summary": {}}}), NOW)
    assert world.plan(newest="2025-01", maintain_reasons=["summary: 900 delete files > 200"])["steps"] == []
    run_tasks.finish(world.ledger, "exec-1", NOW, NOW)
    run_tasks.acquire_lock(world.ledger, "exec-2", NOW, POLICY)
    [again] = world.plan(owner="exec-2", newest="2025-01", maintain_reasons=["still due"])["steps"]
    assert again["mode"] == "maintain"  # a later run may
