"""Ledger on a SQLite file (local mode). Safe for several processes: every write is one
IMMEDIATE transaction and readers wait on a busy timeout."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from datadominion.ledger import STATES, BatchManifest, BatchRecord, LockInfo, RunRecord, StepRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_key TEXT PRIMARY KEY, month TEXT NOT NULL, batch_id TEXT NOT NULL, state TEXT NOT NULL,
    location TEXT NOT NULL, arrived_at TEXT NOT NULL, objects TEXT NOT NULL, reason TEXT NOT NULL,  -- manifest
    step_id TEXT NOT NULL, job_run_id TEXT NOT NULL, log_uri TEXT NOT NULL, attempts INTEGER NOT NULL,
    updated_at TEXT, cloudwatch_logs TEXT NOT NULL DEFAULT '', dashboard_url TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS lock (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT NOT NULL,
    detail TEXT NOT NULL, steps TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    finished_at TEXT NOT NULL, step_id TEXT NOT NULL, run_id TEXT NOT NULL, mode TEXT NOT NULL, months TEXT NOT NULL,
    outcome TEXT NOT NULL, job_run_id TEXT NOT NULL, notes TEXT NOT NULL, report TEXT NOT NULL, usage TEXT NOT NULL,
    PRIMARY KEY (finished_at, step_id)
);
"""
_LOCK_NAME = "summary-tables"


def _ts(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def _dt(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None


def _switch_to_wal(db: sqlite3.Connection, seconds: float = 30.0) -> None:
    """Switching a new ledger file to WAL needs an exclusive lock, and SQLite does not wait
    for it (the busy timeout does not apply): two processes opening a fresh home at once must
    retry instead of failing with "database is locked"."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class SqliteLedger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._connection()
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(batches)")}
        for added in ("cloudwatch_logs", "dashboard_url"):  # a ledger from before these columns
            if added not in columns:
                db.execute(f"ALTER TABLE batches ADD COLUMN {added} TEXT NOT NULL DEFAULT ''")

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread, kept open: opening one per call cost more than the call.
        WAL lets readers run beside the writer and makes a commit one append; synchronous=NORMAL
        survives a process crash (an OS crash may lose the last commit, which a re-run repeats)."""
        db: Optional[sqlite3.Connection] = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            _switch_to_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[object] = ()) -> List[sqlite3.Row]:
        return list(self._connection().execute(sql, args))

    @staticmethod
    def _record(row: sqlite3.Row) -> BatchRecord:
        return BatchRecord(
            batch_key=row["batch_key"], month=row["month"], batch_id=row["batch_id"], state=row["state"],
            location=row["location"], arrived_at=datetime.fromisoformat(row["arrived_at"]),
            manifest=BatchManifest.from_json(row["objects"]), reason=row["reason"],
            step_id=row["step_id"], job_run_id=row["job_run_id"], log_uri=row["log_uri"],
            attempts=int(row["attempts"]), updated_at=_dt(row["updated_at"]),
            cloudwatch_logs=row["cloudwatch_logs"], dashboard_url=row["dashboard_url"],
        )

    @staticmethod
    def _values(r: BatchRecord) -> tuple:
        return (r.batch_key, r.month, r.batch_id, r.state, r.location, _ts(r.arrived_at),
                r.manifest.to_json(), r.reason, r.step_id, r.job_run_id, r.log_uri,
                r.attempts, _ts(r.updated_at), r.cloudwatch_logs, r.dashboard_url)

    def register(self, record: BatchRecord) -> bool:
        with self._tx() as db:
            cursor = db.execute("INSERT OR IGNORE INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                self._values(record))
            return cursor.rowcount == 1

    def get(self, batch_key: str) -> Optional[BatchRecord]:
        rows = self._read("SELECT * FROM batches WHERE batch_key = ?", (batch_key,))
        return self._record(rows[0]) if rows else None

    def batches(self, states: Sequence[str] = STATES) -> List[BatchRecord]:
        marks = ",".join("?" for _ in states)
        rows = self._read(f"SELECT * FROM batches WHERE state IN ({marks}) ORDER BY month, arrived_at, batch_key",
                          tuple(states))
        return [self._record(r) for r in rows]

    def update(self, record: BatchRecord) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self._values(record))

    def acquire_lock(self, owner: str, now: datetime, lease_seconds: int) -> bool:
        expires = now + timedelta(seconds=lease_seconds)
        with self._tx() as db:
            row = db.execute("SELECT owner, expires_at FROM lock WHERE name = ?", (_LOCK_NAME,)).fetchone()
            if row and row[0] != owner and datetime.fromisoformat(row[1]) > now:
                return False
            acquired = now if not row or row[0] != owner else None
            if acquired is None:
                db.execute("UPDATE lock SET expires_at = ? WHERE name = ?", (_ts(expires), _LOCK_NAME))
            else:
                db.execute("INSERT OR REPLACE INTO lock VALUES (?,?,?,?)",
                           (_LOCK_NAME, owner, _ts(acquired), _ts(expires)))
            return True

    def renew_lock(self, owner: str, now: datetime, lease_seconds: int) -> bool:
        expires = now + timedelta(seconds=lease_seconds)
        with self._tx() as db:
            changed = db.execute("UPDATE lock SET expires_at = ? WHERE name = ? AND owner = ?",
                                 (_ts(expires), _LOCK_NAME, owner)).rowcount
        return bool(changed)

    def release_lock(self, owner: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM lock WHERE name = ? AND owner = ?", (_LOCK_NAME, owner))

    def lock(self) -> Optional[LockInfo]:
        rows = self._read("SELECT owner, acquired_at, expires_at FROM lock WHERE name = ?", (_LOCK_NAME,))
        if not rows:
            return None
        return LockInfo(rows[0][0], datetime.fromisoformat(rows[0][1]), datetime.fromisoformat(rows[0][2]))

    def record_run(self, run: RunRecord) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?)",
                       (run.run_id, _ts(run.started_at), _ts(run.finished_at), run.outcome, run.detail,
                        json.dumps(list(run.steps))))

    def runs(self, limit: int = 10) -> List[RunRecord]:
        rows = self._read("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        return [RunRecord(r["run_id"], datetime.fromisoformat(r["started_at"]), _dt(r["finished_at"]),
                          r["outcome"], r["detail"], tuple(json.loads(r["steps"]))) for r in rows]

    def record_step(self, record: StepRecord) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (_ts(record.finished_at), record.step_id, record.run_id, record.mode,
                        json.dumps(list(record.months)), record.outcome, record.job_run_id,
                        json.dumps(list(record.notes)), json.dumps(record.report, sort_keys=True, default=str),
                        json.dumps(record.usage, sort_keys=True)))

    def steps(self, limit: int = 10, mode: Optional[str] = None) -> List[StepRecord]:
        where, args = ("WHERE mode = ?", (mode, limit)) if mode else ("", (limit,))
        rows = self._read(f"SELECT * FROM steps {where} ORDER BY finished_at DESC LIMIT ?", args)
        return [StepRecord(r["step_id"], r["run_id"], r["mode"], tuple(json.loads(r["months"])),
                           datetime.fromisoformat(r["finished_at"]), r["outcome"], r["job_run_id"],
                           tuple(json.loads(r["notes"])), json.loads(r["report"]), json.loads(r["usage"]))
                for r in rows]
