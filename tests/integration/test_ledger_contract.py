"""One contract for the Ledger port, run against both adapters: SQLite (local mode) and
DynamoDB (AWS, under moto)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from datadominion.ledger import DONE, FAILED, REGISTERED, RUNNING, BatchRecord, RunRecord, StepRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        from datadominion.adapters.sqlite_ledger import SqliteLedger

        return SqliteLedger(tmp_path / "ledger.db")
    from datadominion.adapters.dynamodb_ledger import DynamoDbLedger

    aws = request.getfixturevalue("aws")
    return DynamoDbLedger(aws.dynamodb, aws.ledger_table)


def batch(month: str = "2025-02", batch_id: str = "b1", state: str = REGISTERED) -> BatchRecord:
    return BatchRecord(batch_key=f"{month}/{batch_id}", month=month, batch_id=batch_id, state=state,
                       location=f"s3://landing/accounts_all/rpt_as_of_mo={month}/{batch_id}/", arrived_at=T0,
                       updated_at=T0)


def test_a_batch_registers_once_and_is_listed_by_state(ledger):
    first = batch()
    assert ledger.register(first)
    assert not ledger.register(first.moved(FAILED, T0))  # the second registration changes nothing
    assert ledger.get("2025-02/b1").state == REGISTERED
    ledger.register(batch("2025-01"))
    ledger.update(first.moved(DONE, T0 + timedelta(seconds=1), attempts=2, reason=""))
    assert [b.batch_key for b in ledger.batches([DONE])] == ["2025-02/b1"]
    assert [b.batch_key for b in ledger.batches([REGISTERED, RUNNING])] == ["2025-01/b1"]
    assert [b.batch_key for b in ledger.batches()] == ["2025-01/b1", "2025-02/b1"]  # month order
    assert ledger.get("2025-02/b1").attempts == 2 and ledger.get("missing/x") is None


def test_lock_contention_renewal_and_lease_expiry(ledger):
    assert ledger.acquire_lock("a", T0, 60)
    assert not ledger.acquire_lock("b", T0 + timedelta(seconds=30), 60)  # a live holder is never displaced
    assert ledger.acquire_lock("a", T0 + timedelta(seconds=30), 60)  # the holder renews
    held = ledger.lock()
    assert held.owner == "a" and held.acquired_at == T0 and held.expires_at == T0 + timedelta(seconds=90)
    assert not ledger.acquire_lock("b", T0 + timedelta(seconds=89), 60)
    assert ledger.acquire_lock("b", T0 + timedelta(seconds=91), 60)  # a crashed holder's lease expired
    ledger.release_lock("a")  # not the holder: nothing happens
    assert ledger.lock().owner == "b"
    ledger.release_lock("b")
    assert ledger.lock() is None


def test_renewal_extends_only_the_holders_lease_and_never_takes_a_lock_over(ledger):
    assert not ledger.renew_lock("a", T0, 60)  # nobody holds it: renewing is not acquiring
    assert ledger.lock() is None
    assert ledger.acquire_lock("a", T0, 60)
    assert ledger.renew_lock("a", T0 + timedelta(seconds=50), 60)
    assert ledger.lock().expires_at == T0 + timedelta(seconds=110)
    assert ledger.acquire_lock("b", T0 + timedelta(seconds=200), 60)  # a's lease ran out; b took it
    assert not ledger.renew_lock("a", T0 + timedelta(seconds=201), 60)  # a must stop, not renew b's lock
    assert ledger.lock().owner == "b"
    # An expired lease that nobody took is still its holder's to renew: no one else planned meanwhile.
    assert ledger.renew_lock("b", T0 + timedelta(seconds=900), 60)


def test_runs_are_listed_newest_first(ledger):
    for i in range(3):
        ledger.record_run(RunRecord(f"run-{i}", T0 + timedelta(minutes=i), T0 + timedelta(minutes=i, seconds=30),
                                    "succeeded", steps=(f"s{i}",)))
    runs = ledger.runs(limit=2)
    assert [r.run_id for r in runs] == ["run-2", "run-1"] and runs[0].steps == ("s2",)


def test_steps_are_recorded_with_report_and_usage_newest_first_and_by_mode(ledger):
    figures = {"maintenance": {"summary": {"before": {"delete_files": 9}, "after": {"delete_files": 0}}}}
    for i in range(3):
        mode = "maintain" if i < 2 else "forward"
        ledger.record_step(StepRecord(f"step-{i}", "exec-1", mode, (f"2024-0{i + 1}",),
                                      T0 + timedelta(days=i), "DONE", f"00f{i}", ("summary: 9 delete files > 5",),
                                      figures, {"vcpu_hours": 0.5 + i}))
    newest, older = ledger.steps(limit=2)
    assert (newest.step_id, older.step_id) == ("step-2", "step-1") and newest.mode == "forward"
    [maintained] = ledger.steps(limit=1, mode="maintain")
    assert maintained.step_id == "step-1" and maintained.report == figures and maintained.usage == {"vcpu_hours": 1.5}
    assert maintained.notes == ("summary: 9 delete files > 5",) and maintained.months == ("2024-02",)
    assert maintained.finished_at == T0 + timedelta(days=1) and maintained.job_run_id == "00f1"
