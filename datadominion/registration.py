"""Register: turn a ``_SUCCESS`` marker into a ledger record, or a REJECTED one with a reason.

Checks only what can be seen without reading rows (the job validates the rows):
key layout, a real month not too far in the future, and a batch folder of non-empty
Parquet objects with nothing unexpected beside them. The magic bytes of a batch's objects
are checked concurrently and within a time budget (a production month is thousands of
objects); the object list goes to a manifest file, not into the ledger item.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from datadominion.feedback import leave_rejection_note
from datadominion.landing import SOURCE_PREFIX, SUCCESS_MARKER, BatchKeyError, BatchRef, parse_marker_key
from datadominion.ledger import REGISTERED, REJECTED, BatchManifest, BatchRecord, Ledger
from datadominion.months import month_of, parse_month
from datadominion.storage import BatchStorage, StoredObject

PARQUET_MAGIC = b"PAR1"
MIN_PARQUET_BYTES = 12  # header magic + footer length + footer magic
CHECK_WORKERS = 32
CHECK_SECONDS = 180.0  # well inside the Register Lambda's 300 s timeout


class RegistrationTimeout(RuntimeError):
    """The objects could not all be checked in time; nothing was recorded, a later run retries."""


@dataclass(frozen=True)
class ManifestSink:
    """Where a batch's object list is written at registration: ``<prefix>/<month>/<batch_id>.json``."""

    prefix: str
    write_text: Callable[[str, str], None]

    def save(self, ref: BatchRef, objects: Sequence[StoredObject]) -> BatchManifest:
        text = json.dumps({"batch_key": ref.batch_key, "objects": [[o.key, o.size] for o in objects]})
        uri = f"{self.prefix.rstrip('/')}/{ref.month}/{ref.batch_id}.json"
        self.write_text(uri, text)
        return BatchManifest(uri, len(objects), sum(o.size for o in objects), hashlib.sha256(text.encode()).hexdigest())


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
    check_magic(objects, storage)
    return tuple(objects)


def check_magic(objects: Sequence[StoredObject], storage: BatchStorage, workers: int = CHECK_WORKERS,
                seconds: float = CHECK_SECONDS) -> None:
    """Every object ends like a Parquet file: a footer length that fits the object, then PAR1.
    One ranged read per object (the job reads every footer itself), by ``workers`` threads
    within ``seconds``."""
    def check(o: StoredObject) -> Optional[str]:
        if o.size < MIN_PARQUET_BYTES:
            return o.key
        tail = storage.read_range(o.key, -8, 8)
        footer = int.from_bytes(tail[:4], "little")
        return None if tail[4:] == PARQUET_MAGIC and footer + MIN_PARQUET_BYTES <= o.size else o.key

    deadline = time.monotonic() + seconds
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(objects))))
    try:
        futures = [pool.submit(check, o) for o in objects]
        done, not_done = wait(futures, timeout=max(deadline - time.monotonic(), 0), return_when=FIRST_EXCEPTION)
        failures = [f.exception() for f in done if f.exception() is not None]
        bad = sorted(key for key in (f.result() for f in done if f.exception() is None) if key)
        if bad:
            raise BatchRejected(f"{bad[0]} is not a Parquet file (no PAR1 footer that fits the object)"
                                + (f"; {len(bad) - 1} more such objects" if len(bad) > 1 else ""))
        if failures:
            raise failures[0]  # type: ignore[misc]  # e.g. a storage error: not the batch's fault
        if not_done:
            raise RegistrationTimeout(f"checked {len(done)} of {len(objects)} objects in {seconds:.0f} s; "
                                      "the batch stays unregistered and the next run retries it")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def check_month(ref: BatchRef, now: datetime, tolerance_months: int) -> None:
    latest_allowed = parse_month(month_of(now.date())) + tolerance_months
    if parse_month(ref.month) > latest_allowed:
        raise BatchRejected(
            f"month {ref.month} is in the future (more than {tolerance_months} month(s) after {month_of(now.date())})"
        )


def register_marker(
    marker_key: str, storage: BatchStorage, ledger: Ledger, now: datetime, tolerance_months: int,
    manifests: ManifestSink,
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
        if stored:
            leave_rejection_note(storage, record)
        return RegisterOutcome("rejected" if stored else "duplicate", ref.batch_key, str(exc), record)
    record = base.moved(REGISTERED, now, manifest=manifests.save(ref, objects))
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


@dataclass(frozen=True)
class IncompleteBatch:
    folder: str  # accounts_all/rpt_as_of_mo=YYYY-MM/<batch_id>/
    objects: int
    newest: datetime


def _by_batch_folder(objects: Sequence[StoredObject]) -> Dict[str, List[StoredObject]]:
    """accounts_all/rpt_as_of_mo=YYYY-MM/<batch_id>/ -> the objects under it."""
    folders: Dict[str, List[StoredObject]] = {}
    for o in objects:
        parts = o.key.split("/")
        if len(parts) >= 4:
            folders.setdefault("/".join(parts[:3]) + "/", []).append(o)
    return folders


def find_incomplete(storage: BatchStorage, now: datetime, older_than: timedelta,
                    listing: Optional[Sequence[StoredObject]] = None) -> List[IncompleteBatch]:
    """Batch folders holding data but no ``_SUCCESS`` whose newest object is older than
    ``older_than``: a delivery that never finished is otherwise silent. ``listing``: the
    landing area already listed (the sweep lists it once)."""
    folders = _by_batch_folder(storage.list(SOURCE_PREFIX) if listing is None else listing)
    stalled = []
    for folder, objects in sorted(folders.items()):
        if any(o.key.endswith("/" + SUCCESS_MARKER) for o in objects):
            continue
        newest = max((o.modified for o in objects if o.modified is not None), default=None)
        if newest is not None and now - newest > older_than:
            stalled.append(IncompleteBatch(folder, len(objects), newest))
    return stalled


def unregistered_batches(storage: BatchStorage, ledger: Ledger, now: datetime) -> List[BatchRecord]:
    """Complete batches the next sweep would register, as they would stand (unchecked): what
    a plan preview adds to the pending batches. Nothing is written."""
    listing = storage.list(SOURCE_PREFIX)
    folders = _by_batch_folder(listing)
    found = []
    for marker in find_markers(storage, listing):
        try:
            ref = parse_marker_key(marker)
        except BatchKeyError:
            continue
        if ledger.get(ref.batch_key) is not None:
            continue
        objects = [o for o in folders.get(ref.prefix, []) if not o.key.endswith("/" + SUCCESS_MARKER)]
        found.append(BatchRecord(ref.batch_key, ref.month, ref.batch_id, REGISTERED, storage.uri(ref.prefix), now,
                                 manifest=BatchManifest(count=len(objects), total_bytes=sum(o.size for o in objects))))
    return found


def find_markers(storage: BatchStorage, listing: Optional[Sequence[StoredObject]] = None) -> List[str]:
    """Every ``_SUCCESS`` key under accounts_all/ (the sweep and the local poller)."""
    objects = storage.list(SOURCE_PREFIX) if listing is None else listing
    return [o.key for o in objects if o.key.endswith("/" + SUCCESS_MARKER)]
