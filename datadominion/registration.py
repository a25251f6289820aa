"""Register: turn a ``_SUCCESS`` marker into a ledger record, or a REJECTED one with a reason.

Checks only what can be seen without reading rows (the job validates the rows):
key layout, a real month not too far in the future, and a batch folder of non-empty
Parquet objects with nothing unexpected beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Tuple

from datadominion.landing import SUCCESS_MARKER, BatchKeyError, BatchRef, parse_marker_key
from datadominion.ledger import REGISTERED, REJECTED, BatchRecord, Ledger
from datadominion.months import month_of, parse_month
from datadominion.storage import BatchStorage, StoredObject

PARQUET_MAGIC = b"PAR1"
MIN_PARQUET_BYTES = 12  # header magic + footer length + footer magic


@dataclass(frozen=True)
class RegisterOutcome:
    status: str  # "registered" | "duplicate" | "rejected"
    batch_key: str
    reason: str = ""
    record: Optional[BatchRecord] = None


class BatchRejected(ValueError):
    pass


def inspect_batch(ref: BatchRef, storage: BatchStorage) -> Tuple[StoredObject, ...]:
    """The batch's data objects, or BatchRejected saying what a producer must fix."""
    objects: List[StoredObject] = [o for o in storage.list(ref.prefix) if not o.key.endswith("/" + SUCCESS_MARKER)]
    nested = [o.key for o in objects if "/" in o.key[len(ref.prefix):]]
    if nested:
        raise BatchRejected(f"unexpected sub-folders in the batch folder: {nested[:3]}")
    unexpected = [o.key for o in objects if not o.key.endswith(".parquet")]
    if unexpected:
        raise BatchRejected(f"unexpected non-Parquet objects in the batch folder: {unexpected[:3]}")
    if not objects:
        raise BatchRejected(f"the {SUCCESS_MARKER} marker has no .parquet objects beside it")
    empty = [o.key for o in objects if o.size == 0]
    if empty:
        raise BatchRejected(f"zero-byte Parquet objects: {empty[:3]}")
    for o in objects:
        if o.size < MIN_PARQUET_BYTES or storage.read_range(o.key, 0, 4) != PARQUET_MAGIC \
                or storage.read_range(o.key, -4, 4) != PARQUET_MAGIC:
            raise BatchRejected(f"{o.key} is not a Parquet file (no PAR1 magic at both ends)")
    return tuple(objects)


def check_month(ref: BatchRef, now: datetime, tolerance_months: int) -> None:
    latest_allowed = parse_month(month_of(now.date())) + tolerance_months
    if parse_month(ref.month) > latest_allowed:
        raise BatchRejected(
            f"month {ref.month} is in the future (more than {tolerance_months} month(s) after {month_of(now.date())})"
        )


def register_marker(
    marker_key: str, storage: BatchStorage, ledger: Ledger, now: datetime, tolerance_months: int
) -> RegisterOutcome:
    try:
        ref = parse_marker_key(marker_key)
    except BatchKeyError as exc:
        return _reject_unparsable(marker_key, str(exc), ledger, now)
    if ledger.get(ref.batch_key) is not None:
        return RegisterOutcome("duplicate", ref.batch_key)
    base = BatchRecord(batch_key=ref.batch_key, month=ref.month, batch_id=ref.batch_id, state=REGISTERED,
                       location=storage.uri(ref.prefix), arrived_at=now, updated_at=now)
    try:
        check_month(ref, now, tolerance_months)
        objects = inspect_batch(ref, storage)
    except BatchRejected as exc:
        record = base.moved(REJECTED, now, reason=str(exc))
        stored = ledger.register(record)
        return RegisterOutcome("rejected" if stored else "duplicate", ref.batch_key, str(exc), record)
    record = base.moved(REGISTERED, now, objects=tuple((o.key, o.size) for o in objects))
    if not ledger.register(record):
        return RegisterOutcome("duplicate", ref.batch_key)
    return RegisterOutcome("registered", ref.batch_key, record=record)


def _reject_unparsable(marker_key: str, reason: str, ledger: Ledger, now: datetime) -> RegisterOutcome:
    """A key we cannot parse is still recorded, under its raw key, so it shows up for operators."""
    key = f"invalid/{marker_key}"
    record = BatchRecord(batch_key=key, month="", batch_id="", state=REJECTED, location=marker_key,
                         arrived_at=now, reason=reason, updated_at=now)
    stored = ledger.register(record)
    return RegisterOutcome("rejected" if stored else "duplicate", key, reason, record)


def find_markers(storage: BatchStorage) -> List[str]:
    """Every ``_SUCCESS`` key under accounts_all/ (the sweep and the local poller)."""
    return [o.key for o in storage.list("accounts_all/") if o.key.endswith("/" + SUCCESS_MARKER)]
