import json
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datadominion.adapters.local_storage import LocalStorage, write_local_text
from datadominion.adapters.sqlite_ledger import SqliteLedger
from datadominion.ledger import REGISTERED, REJECTED
from datadominion.registration import ManifestSink, find_markers, register_marker

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def landing(tmp_path):
    return tmp_path / "landing"


@pytest.fixture
def ledger(tmp_path):
    return SqliteLedger(tmp_path / "ledger.db")


def make_batch(landing, month="2025-02", batch_id="b1", files=None, marker=True):
    folder = landing / "accounts_all" / f"rpt_as_of_mo={month}" / batch_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ({"part-0.parquet": "parquet"} if files is None else files).items():
        if content == "parquet":
            pq.write_table(pa.table({"a": [1]}), folder / name)
        else:
            (folder / name).write_bytes(content)
    if marker:
        (folder / "_SUCCESS").write_bytes(b"")
    return f"accounts_all/rpt_as_of_mo={month}/{batch_id}/_SUCCESS"


def register(key, landing, ledger, tolerance=1):
    return register_marker(key, LocalStorage(landing), ledger, NOW, tolerance,
                           ManifestSink((landing.parent / "manifests").as_uri(), write_local_text))


def test_good_batch_is_registered_once(landing, ledger):
    key = make_batch(landing)
    first = register(key, landing, ledger)
    assert first.status == "registered"
    record = ledger.get("2025-02/b1")
    assert record.state == REGISTERED and record.month == "2025-02"
    assert record.manifest.count == 1 and record.manifest.total_bytes > 0
    assert record.location.startswith("file://") and "rpt_as_of_mo=2025-02/b1/" in record.location
    assert register(key, landing, ledger).status == "duplicate"
    assert len(ledger.batches()) == 1


@pytest.mark.parametrize(
    "key, files, reason",
    [
        ("accounts_all/rpt_as_of_mo=2025-13/b1/_SUCCESS", None, "month 13"),
        ("accounts_all/rpt_as_of_mo=202502/b1/_SUCCESS", None, "not a month in the form YYYY-MM"),
        ("accounts_all/rpt_as_of_mo=2027-01/b1/_SUCCESS", None, "is in the future"),
        ("accounts_all/month=2025-01/b1/_SUCCESS", None, "does not follow"),
        ("accounts_all/rpt_as_of_mo=2025-01/_SUCCESS", None, "does not follow"),
        ("other/rpt_as_of_mo=2025-01/b1/_SUCCESS", None, "is not under the 'accounts_all/' prefix"),
        ("accounts_all/rpt_as_of_mo=2025-01/b1/part-0.parquet", None, "is not a _SUCCESS marker"),
        (None, {}, "has no .parquet objects"),
        (None, {"part-0.parquet": b""}, "zero-byte Parquet objects"),
        (None, {"part-0.parquet": b"this is not parquet at all"}, "is not a Parquet file"),
        (None, {"part-0.parquet": b"PAR1" + bytes(8) + (10**6).to_bytes(4, "little") + b"PAR1"},
         "is not a Parquet file"),  # a truncated file: its footer does not fit
        (None, {"part-0.parquet": "parquet", "notes.csv": b"a,b"}, "unexpected non-Parquet objects"),
    ],
)
def test_bad_batches_are_rejected_with_a_reason(landing, ledger, key, files, reason):
    if key is None:
        key = make_batch(landing, files=files)
    outcome = register(key, landing, ledger)
    assert outcome.status == "rejected"
    assert reason in outcome.reason
    [record] = ledger.batches()
    assert record.state == REJECTED and reason in record.reason
    assert ledger.batches([REGISTERED]) == []
    notes = sorted(landing.rglob("_REJECTED.json"))
    if record.batch_id:
        [note] = notes
        assert note.parent.name == record.batch_id and reason in json.loads(note.read_text())["reason"]
    else:
        assert notes == []


def test_a_rejection_note_names_the_rule_and_a_redelivery_is_unaffected(landing, ledger):
    register(make_batch(landing, files={"part-0.parquet": b""}), landing, ledger)
    folder = landing / "accounts_all" / "rpt_as_of_mo=2025-02"
    note = json.loads((folder / "b1" / "_REJECTED.json").read_text())
    assert note["state"] == REJECTED and note["month"] == "2025-02" and note["batch_id"] == "b1"
    assert "zero-byte" in note["reason"] and "new batch id" in note["what_to_do"]
    assert register(make_batch(landing, batch_id="b2"), landing, ledger).status == "registered"
    assert not (folder / "b2" / "_REJECTED.json").exists()
    assert register(make_batch(landing, batch_id="b1", files={}), landing, ledger).status == "duplicate"


def test_a_batch_folder_with_data_but_no_marker_is_reported_once_it_is_old_enough(landing):
    import os

    from datadominion.registration import find_incomplete

    make_batch(landing, batch_id="done")
    make_batch(landing, batch_id="stalled", files={"part-0.parquet": "parquet", "part-1.parquet": "parquet"},
               marker=False)
    make_batch(landing, batch_id="arriving", marker=False)
    hours_ago = NOW.timestamp() - 7 * 3600
    for path in (landing / "accounts_all").rglob("*"):
        if "arriving" not in str(path):
            os.utime(path, (hours_ago, hours_ago))
    now_ish = datetime.fromtimestamp(NOW.timestamp(), timezone.utc)
    [stalled] = find_incomplete(LocalStorage(landing), now_ish, timedelta(hours=6))
    assert stalled.folder == "accounts_all/rpt_as_of_mo=2025-02/stalled/" and stalled.objects == 2
    assert find_incomplete(LocalStorage(landing), now_ish, timedelta(hours=8)) == []


def test_incomplete_batch_has_no_marker_and_is_not_found(landing):
    make_batch(landing, marker=False)
    assert find_markers(LocalStorage(landing)) == []
    make_batch(landing, batch_id="b2")
    assert find_markers(LocalStorage(landing)) == ["accounts_all/rpt_as_of_mo=2025-02/b2/_SUCCESS"]


def test_attempts_grow_only_when_a_new_or_failed_batch_starts(landing, ledger):
    from datadominion.ledger import FAILED, RUNNING
    from datadominion.lifecycle import pending_batches, start_step
    from datadominion.planning import plan_steps

    register(make_batch(landing), landing, ledger)
    [step] = plan_steps(pending_batches(ledger), "2025-01", "run-1")
    first = start_step(ledger, step, NOW)
    assert first.attempt == 1 and ledger.get("2025-02/b1").state == RUNNING
    # The run crashed: the batch is still RUNNING; re-planned, it keeps its attempt (same client token).
    [again] = plan_steps(pending_batches(ledger), "2025-01", "run-2")
    assert start_step(ledger, again, NOW).attempt == 1
    # It failed: the next start is a new attempt.
    record = ledger.get("2025-02/b1")
    ledger.update(record.moved(FAILED, NOW, reason="job failed"))
    [retry] = plan_steps(pending_batches(ledger), "2025-01", "run-3")
    assert start_step(ledger, retry, NOW).attempt == 2


def test_a_batch_failing_max_attempts_times_is_parked_until_retry_failed(landing, ledger):
    from datadominion.ledger import FAILED
    from datadominion.lifecycle import parked_batches, pending_batches

    register(make_batch(landing), landing, ledger)
    record = ledger.get("2025-02/b1")
    ledger.update(record.moved(FAILED, NOW, attempts=2, reason="job failed"))
    assert [b.batch_key for b in pending_batches(ledger, max_attempts=3)] == ["2025-02/b1"]
    ledger.update(record.moved(FAILED, NOW, attempts=3, reason="job failed"))
    assert pending_batches(ledger, max_attempts=3) == []
    assert [b.batch_key for b in parked_batches(ledger, 3)] == ["2025-02/b1"]
    assert [b.batch_key for b in pending_batches(ledger, 3, retry_failed=True)] == ["2025-02/b1"]


def test_switching_a_fresh_ledger_to_wal_retries_while_another_process_holds_it():
    """Two `process` runs on a new home open the ledger at once: the WAL switch needs an
    exclusive lock and SQLite may answer "database is locked" without waiting (seen as an
    intermittent failure of the two-concurrent-runs CLI test); it is retried, other errors not."""
    import sqlite3

    import pytest

    from datadominion.adapters.sqlite_ledger import _switch_to_wal

    class Busy:
        def __init__(self, failures: int, message: str = "database is locked"):
            self.failures, self.message, self.calls = failures, message, 0

        def execute(self, sql: str):
            self.calls += 1
            if self.calls <= self.failures:
                raise sqlite3.OperationalError(self.message)

    db = Busy(3)
    _switch_to_wal(db)  # type: ignore[arg-type]
    assert db.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _switch_to_wal(Busy(1, "disk I/O error"))  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _switch_to_wal(Busy(10**6), seconds=0.2)  # type: ignore[arg-type]
