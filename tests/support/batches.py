"""Hand-made landing batches for engine tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

import pyarrow as pa
import pyarrow.parquet as pq

from datadominion.schema import arrow_schema
from datadominion.steps import StepBatch

EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)


def record(config: Any, key: int, month: str, ts_offset: int = 0, **values: Any) -> Dict[str, Any]:
    """A complete accounts_all record; ``ts_offset`` minutes after a fixed epoch."""
    row: Dict[str, Any] = {}
    for column in config.source_schema:
        kind = column.type
        row[column.name] = {"bigint": 0, "int": 0, "string": "x", "date": date(2020, 1, 1),
                            "timestamp": EPOCH, "double": 0.0}[kind]
    row.update({
        "cons_acct_key": key, "rpt_as_of_mo": month, "base_ts": EPOCH + timedelta(minutes=ts_offset),
        "acct_pymt_stat_cd": "0", "asset_class_cd_4in": "S", "past_due_am": 0, "days_past_due_ct_4in": 0,
        "acct_bal_am": 1000, "acct_credit_ext_am": 5000, "actual_pymt_am": 100,
    })
    row.update(values)
    return row


def write_batch(landing: Path, month: str, batch_id: str, rows: List[Dict[str, Any]], config: Any,
                schema: Any = None) -> StepBatch:
    folder = landing / "accounts_all" / f"rpt_as_of_mo={month}" / batch_id
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema or arrow_schema(config.source_types))
    pq.write_table(table, folder / "part-00000.parquet")
    (folder / "_SUCCESS").write_bytes(b"")
    return StepBatch(month, batch_id, "file://" + str(folder) + "/")
