"""The ledger: what happened to every batch, and the one-writer lock. Port + records.

Batch states:
    REGISTERED  complete batch seen, waiting to be applied (also: back in the queue)
    RUNNING     its step was submitted
    DONE        applied to accounts_all, summary and latest_summary
    FAILED      its step failed for a reason outside the batch (retried by the next run)
    REJECTED    the batch itself is bad (reason says why); never applied
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

REGISTERED, RUNNING, DONE, FAILED, REJECTED = "REGISTERED", "RUNNING", "DONE", "FAILED", "REJECTED"
STATES = (REGISTERED, RUNNING, DONE, FAILED, REJECTED)
PENDING_STATES = (REGISTERED, FAILED)


@dataclass(frozen=True)
class BatchManifest:
    """What a batch held when it was registered. The object list itself is a JSON file at
    ``uri`` (a production batch has thousands of objects; a DynamoDB item is capped at 400 KB);
    the ledger keeps its location, the object count, total bytes and the file's sha256."""

    uri: str = ""
    count: int = 0
    total_bytes: int = 0
    digest: str = ""

    def to_json(self) -> str:
        return json.dumps({"uri": self.uri, "count": self.count, "total_bytes": self.total_bytes,
                           "digest": self.digest}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BatchManifest:
        data = json.loads(text or "{}")
        if isinstance(data, list):  # a ledger written before manifests: the inline [key, size] list
            return cls("", len(data), sum(int(size) for _, size in data), "")
        return cls(str(data.get("uri", "")), int(data.get("count", 0)), int(data.get("total_bytes", 0)),
                   str(data.get("digest", "")))


@dataclass(frozen=True)
class BatchRecord:
    batch_key: str
    month: str
    batch_id: str
    state: str
    location: str
    arrived_at: datetime
    manifest: BatchManifest = BatchManifest()
    reason: str = ""
    step_id: str = ""
    job_run_id: str = ""
    log_uri: str = ""
    cloudwatch_logs: str = ""
    dashboard_url: str = ""
    attempts: int = 0
    updated_at: Optional[datetime] = None

    def moved(self, state: str, at: datetime, **fields: object) -> BatchRecord:
        return replace(self, state=state, updated_at=at, **fields)  # type: ignore[arg-type]


class LockLost(RuntimeError):
    """This run no longer holds the lock (its lease expired and another run took it)."""


@dataclass(frozen=True)
class LockInfo:
    owner: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    started_at: datetime
    finished_at: Optional[datetime]
    outcome: str
    detail: str = ""
    steps: Tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class StepRecord:
    """How one step ended: who ran it and when, its job run, what it reported (for a
    maintenance step, per table what it rewrote and the figures before and after) and what it
    cost (``usage``: billed vCPU-, memory- and storage-hours and seconds on AWS; wall and CPU
    seconds locally)."""

    step_id: str
    run_id: str
    mode: str
    months: Tuple[str, ...]
    finished_at: datetime
    outcome: str  # DONE, REJECTED (every batch bad) or FAILED
    job_run_id: str = ""
    notes: Tuple[str, ...] = field(default=())
    report: Dict[str, Any] = field(default_factory=dict)
    usage: Dict[str, float] = field(default_factory=dict)


class Ledger(Protocol):
    def register(self, record: BatchRecord) -> bool:
        """Insert a new batch; False (and no change) when the batch key is already known."""

    def get(self, batch_key: str) -> Optional[BatchRecord]: ...

    def batches(self, states: Sequence[str] = STATES) -> List[BatchRecord]: ...

    def update(self, record: BatchRecord) -> None: ...

    def acquire_lock(self, owner: str, now: datetime, lease_seconds: int) -> bool:
        """Take or renew the lock; False while another owner's lease is live."""

    def renew_lock(self, owner: str, now: datetime, lease_seconds: int) -> bool:
        """Extend ``owner``'s lease; False when another owner holds the lock (never takes it over)."""

    def release_lock(self, owner: str) -> None:
        """Release the lock if ``owner`` holds it (a no-op otherwise)."""

    def lock(self) -> Optional[LockInfo]: ...

    def record_run(self, run: RunRecord) -> None: ...

    def runs(self, limit: int = 10) -> List[RunRecord]: ...

    def record_step(self, record: StepRecord) -> None: ...

    def steps(self, limit: int = 10, mode: Optional[str] = None) -> List[StepRecord]:
        """The newest steps first (of one mode, when given)."""
