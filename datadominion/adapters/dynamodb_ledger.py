"""Ledger on one DynamoDB table (AWS mode).

Items (partition key ``pk``, sort key ``sk``):
    BATCH#<month>/<batch_id>  BATCH         one per batch; GSI ``by-state`` (state, batch_key)
    LOCK                      LOCK          the one-writer lock: owner, acquired_at, expires_at
    RUN                       <started>#id  one per run (newest first by sort key)

Every write that decides something is a conditional write: registering a batch twice,
or taking a lock another owner holds, fails in DynamoDB itself, not in a read-then-write.
Items hold batch keys and a batch's manifest summary (its object list is a file in S3), never
account data, so an item stays a few KB whatever the batch size.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence

from datadominion.ledger import STATES, BatchManifest, BatchRecord, LockInfo, RunRecord, StepRecord
from datadominion.steps import MODES

STATE_INDEX = "by-state"
_LOCK_KEY = {"pk": {"S": "LOCK"}, "sk": {"S": "LOCK"}}


def _ts(value: Optional[datetime]) -> str:
    """Fixed-width UTC text, so that string order is time order (the lock's condition needs it)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else ""


def _dt(value: str) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None


class DynamoDbLedger:
    def __init__(self, dynamodb_client: Any, table_name: str):
        self.db, self.table = dynamodb_client, table_name

    # --- batches -------------------------------------------------------------------------
    @staticmethod
    def _item(r: BatchRecord) -> Dict[str, Any]:
        return {
            "pk": {"S": f"BATCH#{r.batch_key}"}, "sk": {"S": "BATCH"},
            "batch_key": {"S": r.batch_key}, "month": {"S": r.month}, "batch_id": {"S": r.batch_id},
            "state": {"S": r.state}, "location": {"S": r.location}, "arrived_at": {"S": _ts(r.arrived_at)},
            "manifest": {"S": r.manifest.to_json()}, "reason": {"S": r.reason[:4000]},
            "step_id": {"S": r.step_id}, "job_run_id": {"S": r.job_run_id}, "log_uri": {"S": r.log_uri},
            "cloudwatch_logs": {"S": r.cloudwatch_logs}, "dashboard_url": {"S": r.dashboard_url[:2000]},
            "attempts": {"N": str(r.attempts)}, "updated_at": {"S": _ts(r.updated_at)},
        }

    @staticmethod
    def _record(item: Dict[str, Any]) -> BatchRecord:
        s = {k: v.get("S", v.get("N", "")) for k, v in item.items()}
        arrived = _dt(s["arrived_at"])
        assert arrived is not None
        return BatchRecord(
            batch_key=s["batch_key"], month=s["month"], batch_id=s["batch_id"], state=s["state"],
            location=s["location"], arrived_at=arrived,
            manifest=BatchManifest.from_json(s.get("manifest", "")), reason=s["reason"],
            step_id=s["step_id"], job_run_id=s["job_run_id"], log_uri=s["log_uri"], attempts=int(s["attempts"]),
            cloudwatch_logs=s.get("cloudwatch_logs", ""), dashboard_url=s.get("dashboard_url", ""),
            updated_at=_dt(s["updated_at"]),
        )

    def register(self, record: BatchRecord) -> bool:
        try:
            self.db.put_item(TableName=self.table, Item=self._item(record),
                             ConditionExpression="attribute_not_exists(pk)")
        except self.db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get(self, batch_key: str) -> Optional[BatchRecord]:
        item = self.db.get_item(TableName=self.table, Key={"pk": {"S": f"BATCH#{batch_key}"}, "sk": {"S": "BATCH"}},
                                ConsistentRead=True).get("Item")
        return self._record(item) if item else None

    def batches(self, states: Sequence[str] = STATES) -> List[BatchRecord]:
        found: List[BatchRecord] = []
        paginator = self.db.get_paginator("query")
        for state in states:
            for page in paginator.paginate(TableName=self.table, IndexName=STATE_INDEX,
                                           KeyConditionExpression="#s = :s",
                                           ExpressionAttributeNames={"#s": "state"},
                                           ExpressionAttributeValues={":s": {"S": state}}):
                found += [self._record(i) for i in page.get("Items", [])]
        return sorted(found, key=lambda r: (r.month, r.arrived_at, r.batch_key))

    def update(self, record: BatchRecord) -> None:
        self.db.put_item(TableName=self.table, Item=self._item(record))

    # --- lock ----------------------------------------------------------------------------
    def renew_lock(self, owner: str, now: datetime, lease_seconds: int) -> bool:
        """Extend our own lease (keeps acquired_at); a conditional write, never a takeover."""
        expires = now + timedelta(seconds=lease_seconds)
        try:
            self.db.update_item(TableName=self.table, Key=_LOCK_KEY, UpdateExpression="SET expires_at = :e",
                                ConditionExpression="#o = :o",
                                ExpressionAttributeNames={"#o": "owner"},
                                ExpressionAttributeValues={":e": {"S": _ts(expires)}, ":o": {"S": owner}})
            return True
        except self.db.exceptions.ConditionalCheckFailedException:
            return False

    def acquire_lock(self, owner: str, now: datetime, lease_seconds: int) -> bool:
        expires = now + timedelta(seconds=lease_seconds)
        if self.renew_lock(owner, now, lease_seconds):
            return True
        try:  # take a free lock, or one whose lease has expired (ISO-8601 UTC strings sort by time)
            self.db.put_item(TableName=self.table,
                             Item={**_LOCK_KEY, "owner": {"S": owner}, "acquired_at": {"S": _ts(now)},
                                   "expires_at": {"S": _ts(expires)}},
                             ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                             ExpressionAttributeValues={":now": {"S": _ts(now)}})
            return True
        except self.db.exceptions.ConditionalCheckFailedException:
            return False

    def release_lock(self, owner: str) -> None:
        # Not ours (or already gone): never release another owner's lock.
        with contextlib.suppress(self.db.exceptions.ConditionalCheckFailedException):
            self.db.delete_item(TableName=self.table, Key=_LOCK_KEY, ConditionExpression="#o = :o",
                                ExpressionAttributeNames={"#o": "owner"},
                                ExpressionAttributeValues={":o": {"S": owner}})

    def lock(self) -> Optional[LockInfo]:
        item = self.db.get_item(TableName=self.table, Key=_LOCK_KEY, ConsistentRead=True).get("Item")
        if not item:
            return None
        acquired, expires = _dt(item["acquired_at"]["S"]), _dt(item["expires_at"]["S"])
        assert acquired is not None and expires is not None
        return LockInfo(item["owner"]["S"], acquired, expires)

    # --- runs ----------------------------------------------------------------------------
    def record_run(self, run: RunRecord) -> None:
        self.db.put_item(TableName=self.table, Item={
            "pk": {"S": "RUN"}, "sk": {"S": f"{_ts(run.started_at)}#{run.run_id}"}, "run_id": {"S": run.run_id},
            "started_at": {"S": _ts(run.started_at)}, "finished_at": {"S": _ts(run.finished_at)},
            "outcome": {"S": run.outcome}, "detail": {"S": run.detail[:4000]},
            "steps": {"S": json.dumps(list(run.steps))},
        })

    def record_step(self, record: StepRecord) -> None:
        # One partition per mode: "the newest maintenance" is one query, whatever else ran since.
        self.db.put_item(TableName=self.table, Item={
            "pk": {"S": f"STEP#{record.mode}"}, "sk": {"S": f"{_ts(record.finished_at)}#{record.step_id}"},
            "step_id": {"S": record.step_id}, "run_id": {"S": record.run_id}, "mode": {"S": record.mode},
            "months": {"S": json.dumps(list(record.months))}, "finished_at": {"S": _ts(record.finished_at)},
            "outcome": {"S": record.outcome}, "job_run_id": {"S": record.job_run_id},
            "notes": {"S": json.dumps(list(record.notes))},
            "report": {"S": json.dumps(record.report, sort_keys=True, default=str)[:200_000]},
            "usage": {"S": json.dumps(record.usage, sort_keys=True)},
        })

    def steps(self, limit: int = 10, mode: Optional[str] = None) -> List[StepRecord]:
        records: List[StepRecord] = []
        for m in [mode] if mode else list(MODES):
            items = self.db.query(TableName=self.table, KeyConditionExpression="pk = :p",
                                  ExpressionAttributeValues={":p": {"S": f"STEP#{m}"}}, ScanIndexForward=False,
                                  Limit=limit).get("Items", [])
            records += [_step_record(i) for i in items]
        return sorted(records, key=lambda r: r.finished_at, reverse=True)[:limit]

    def runs(self, limit: int = 10) -> List[RunRecord]:
        items = self.db.query(TableName=self.table, KeyConditionExpression="pk = :p",
                              ExpressionAttributeValues={":p": {"S": "RUN"}}, ScanIndexForward=False,
                              Limit=limit).get("Items", [])
        runs = []
        for i in items:
            started = _dt(i["started_at"]["S"])
            assert started is not None
            runs.append(RunRecord(i["run_id"]["S"], started, _dt(i["finished_at"]["S"]), i["outcome"]["S"],
                                  i["detail"]["S"], tuple(json.loads(i["steps"]["S"]))))
        return runs


def _step_record(item: Dict[str, Any]) -> StepRecord:
    finished = _dt(item["finished_at"]["S"])
    assert finished is not None
    return StepRecord(item["step_id"]["S"], item["run_id"]["S"], item["mode"]["S"],
                      tuple(json.loads(item["months"]["S"])), finished, item["outcome"]["S"],
                      item["job_run_id"]["S"], tuple(json.loads(item["notes"]["S"])),
                      json.loads(item["report"]["S"]), json.loads(item["usage"]["S"]))
