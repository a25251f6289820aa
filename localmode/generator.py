"""Deterministic test data: landing batches of plausible monthly account snapshots.

Values hang together the way a bureau feed's do: the payment rating follows days past
due, the asset class follows delinquency, balances stay under limits, and past-due
amounts follow missed instalments. Everything derives from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datadominion.config import PipelineConfig
from datadominion.landing import SUCCESS_MARKER, BatchRef, month_folder
from datadominion.months import format_month, parse_month
from datadominion.schema import arrow_schema

DPD_RATING_BANDS = [(0, "0"), (1, "1"), (30, "2"), (60, "3"), (90, "4"), (120, "5"), (180, "6")]
ASSET_CLASS_BANDS = [(0, "S"), (1, "M"), (91, "B"), (366, "D"), (1096, "L")]


def rating_for_dpd(dpd: np.ndarray) -> np.ndarray:
    """Payment rating code from days past due (0 current ... 6 = 180+ days)."""
    bounds = np.array([b for b, _ in DPD_RATING_BANDS[1:]])
    codes = np.array([c for _, c in DPD_RATING_BANDS])
    return codes[np.searchsorted(bounds, dpd, side="right")]


def asset_class_for_dpd(dpd: np.ndarray) -> np.ndarray:
    """RBI asset class from days past due: S standard, M special mention, B sub-standard, D doubtful, L loss."""
    bounds = np.array([b for b, _ in ASSET_CLASS_BANDS[1:]])
    codes = np.array([c for _, c in ASSET_CLASS_BANDS])
    return codes[np.searchsorted(bounds, dpd, side="right")]


@dataclass(frozen=True)
class WrittenBatch:
    ref: BatchRef
    rows: int
    path: Path


def _month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def _write_batch(landing: Path, ref: BatchRef, table: pa.Table, files: int = 1) -> WrittenBatch:
    folder = landing / ref.prefix
    folder.mkdir(parents=True, exist_ok=True)
    per_file = max(1, -(-table.num_rows // files))
    for part, start in enumerate(range(0, max(table.num_rows, 1), per_file)):
        pq.write_table(table.slice(start, per_file), folder / f"part-{part:05d}.parquet")
    # The marker comes last: a batch is complete only once it exists.
    (folder / SUCCESS_MARKER).write_bytes(b"")
    return WrittenBatch(ref=ref, rows=table.num_rows, path=folder)


class AccountSimulator:
    """Evolves a fixed population of accounts month by month (vectorised over accounts)."""

    def __init__(self, config: PipelineConfig, accounts: int, seed: int, first_key: int = 1):
        self.config = config
        self.rng = np.random.default_rng(seed)
        n = accounts
        self.keys = np.arange(first_key, first_key + n, dtype=np.int64)
        self.member = np.array([f"MBR{m:04d}" for m in self.rng.integers(1, 500, n)])
        self.port_type = self.rng.choice(np.array(["I", "R", "M", "C"]), n)
        self.acct_type = self.rng.choice(np.array(["01", "02", "05", "06", "10", "51"]), n)
        self.ownership = self.rng.choice(np.array(["1", "2", "4"]), n, p=[0.8, 0.15, 0.05])
        self.limit = (self.rng.integers(10, 2000, n) * 1000).astype(np.int64)
        self.emi = np.maximum(500, (self.limit * self.rng.uniform(0.02, 0.06, n))).astype(np.int64)
        self.open_offset = self.rng.integers(1, 120, n)
        self.dpd = np.zeros(n, dtype=np.int64)
        self.utilisation = self.rng.uniform(0.05, 0.9, n)

    def step(self) -> None:
        """Advance one month: some accounts slip into or deepen delinquency, some cure."""
        n = len(self.keys)
        roll = self.rng.random(n)
        current = self.dpd == 0
        slip = current & (roll < 0.08)
        deepen = ~current & (roll < 0.55)
        cure = ~current & (roll >= 0.80)
        new_dpd = self.dpd.copy()
        new_dpd[slip] = self.rng.integers(1, 60, int(slip.sum()))
        new_dpd[deepen] += 30
        new_dpd[cure] = 0
        self.dpd = np.minimum(new_dpd, 1500)
        self.utilisation = np.clip(self.utilisation + self.rng.normal(0, 0.05, n), 0.0, 0.98)

    def snapshot(self, month_index: int, base_ts: datetime) -> pa.Table:
        n = len(self.keys)
        month_start = _month_start(month_index)
        limit = self.limit
        balance = (limit * self.utilisation).astype(np.int64)
        missed = np.ceil(self.dpd / 30.0).astype(np.int64)
        past_due = np.minimum(self.emi * missed, balance)
        paid = np.where(self.dpd == 0, self.emi, (self.emi * self.rng.uniform(0, 0.5, n)).astype(np.int64))
        rating = rating_for_dpd(self.dpd)
        asset = asset_class_for_dpd(self.dpd)
        open_dates = [_month_start(month_index - int(o)) for o in self.open_offset]
        reported = month_start + timedelta(days=27)
        last_paid = [reported - timedelta(days=int(d) + 3) for d in self.dpd]
        write_off = self.dpd >= 1096
        null_dates = pa.nulls(n, pa.date32())
        columns: Dict[str, pa.Array] = {
            "cons_acct_key": pa.array(self.keys, pa.int64()),
            "bureau_mbr_id": pa.array(self.member),
            "port_type_cd": pa.array(self.port_type),
            "acct_type_dtl_cd": pa.array(self.acct_type),
            "acct_ownrshp_cd": pa.array(self.ownership),
            "acct_open_dt": pa.array(open_dates, pa.date32()),
            "acct_closed_dt": null_dates,
            "acct_dt": pa.array([reported] * n, pa.date32()),
            "last_pymt_dt": pa.array(last_paid, pa.date32()),
            "schd_pymt_dt": pa.array([month_start + timedelta(days=4)] * n, pa.date32()),
            "orig_pymt_due_dt": pa.array([month_start + timedelta(days=4)] * n, pa.date32()),
            "write_off_dt": pa.array([reported if w else None for w in write_off], pa.date32()),
            "acct_stat_cd": pa.array(np.where(write_off, "97", "11")),
            "acct_pymt_stat_cd": pa.array(rating),
            "acct_pymt_stat_dtl_cd": pa.array(np.where(self.dpd == 0, "C", "D")),
            "pymt_terms_cd": pa.array(np.where(self.port_type == "R", "REV", "INST")),
            "pymt_freq_cd": pa.array(["M"] * n),
            "acct_credit_ext_am": pa.array(limit, pa.int32()),
            "acct_bal_am": pa.array(balance, pa.int32()),
            "past_due_am": pa.array(past_due, pa.int32()),
            "actual_pymt_am": pa.array(paid, pa.int32()),
            "hi_credit_am": pa.array(np.maximum(balance, (limit * 0.9).astype(np.int64)), pa.int32()),
            "orig_loan_am": pa.array(limit, pa.int32()),
            "emi_am": pa.array(self.emi, pa.int32()),
            "write_off_am": pa.array(np.where(write_off, balance, 0), pa.int32()),
            "settled_am": pa.array(np.zeros(n, dtype=np.int64), pa.int32()),
            "days_past_due_ct_4in": pa.array(self.dpd, pa.int32()),
            "asset_class_cd_4in": pa.array(asset),
            "suit_filed_wilful_dflt_cd": pa.array(np.where(self.dpd >= 366, "01", "00")),
            "written_off_settled_stat_cd": pa.array(np.where(write_off, "02", "00")),
            "collateral_type_cd": pa.array(np.where(self.port_type == "M", "PROP", "NONE")),
            "rpt_as_of_mo": pa.array([format_month(month_index)] * n),
            "base_ts": pa.array([base_ts] * n, pa.timestamp("us", tz="UTC")),
        }
        schema = arrow_schema(self.config.source_types)
        return pa.Table.from_pydict({f.name: columns[f.name] for f in schema}, schema=schema)


def snapshot_base_ts(month_index: int) -> datetime:
    """When a month's regular snapshot is stamped: early on the 2nd of the next month, UTC."""
    nxt = _month_start(month_index + 1)
    return datetime(nxt.year, nxt.month, 2, 2, 0, tzinfo=timezone.utc)


def generate(
    config: PipelineConfig,
    landing: Path,
    accounts: int,
    months: int,
    start_month: str,
    gap_pct: float = 0.0,
    seed: int = 42,
    files_per_batch: int = 1,
    batch_prefix: str = "gen",
) -> List[WrittenBatch]:
    """Write one landing batch per month; ``gap_pct`` percent of account-months are left out."""
    if accounts < 1 or months < 1:
        raise ValueError("--accounts and --months must be at least 1")
    if not 0.0 <= gap_pct < 100.0:
        raise ValueError(f"--gap-pct must be in [0, 100), got {gap_pct}")
    first = parse_month(start_month)
    sim = AccountSimulator(config, accounts, seed)
    gap_rng = np.random.default_rng(seed + 1)
    written = []
    for index in range(first, first + months):
        if index > first:
            sim.step()
        table = sim.snapshot(index, snapshot_base_ts(index))
        keep = gap_rng.random(accounts) >= gap_pct / 100.0
        table = table.filter(pa.array(keep))
        ref = BatchRef(month=format_month(index), batch_id=f"{batch_prefix}-s{seed}-{format_month(index)}")
        written.append(_write_batch(landing, ref, table, files_per_batch))
    return written


def read_landing_month(landing: Path, month: str) -> Optional[pa.Table]:
    """Every complete batch of ``month`` in the landing folder, concatenated."""
    tables = []
    for marker in sorted((landing / month_folder(month)).glob(f"*/{SUCCESS_MARKER}")):
        for part in sorted(marker.parent.glob("*.parquet")):
            tables.append(pq.ParquetFile(part).read())
    return pa.concat_tables(tables) if tables else None


def write_corrections(
    config: PipelineConfig,
    landing: Path,
    accounts: Sequence[int],
    months: Iterable[str],
    past_due_delta: int,
    dpd_delta: int,
    base_ts: datetime,
    batch_label: str = "corr",
) -> List[WrittenBatch]:
    """A late correction batch per month: the newest landed record of each chosen account,
    with ``past_due_delta`` / ``dpd_delta`` added and a newer ``base_ts`` (the seed's test cases).

    An account with no record that month gets one built from its nearest earlier landed
    month, so a correction can also fill a gap (a backfill that creates a row).
    """
    written = []
    for month in months:
        parse_month(month)
        rows = []
        current = read_landing_month(landing, month)
        if current is not None:  # one pass to the chosen accounts, not one scan of the month per account
            keys = pa.array(list(accounts), current["cons_acct_key"].type)
            current = current.filter(pc.is_in(current["cons_acct_key"], keys))
        for key in accounts:
            record = _newest_record(current, key)
            if record is None:
                record = _nearest_earlier_record(landing, key, month)
                if record is None:
                    raise ValueError(f"account {key} has no landed record on or before {month} to correct")
                record["rpt_as_of_mo"] = month
            record["past_due_am"] = int(record["past_due_am"] or 0) + past_due_delta
            record["days_past_due_ct_4in"] = int(record["days_past_due_ct_4in"] or 0) + dpd_delta
            record["base_ts"] = base_ts
            rows.append(record)
        schema = arrow_schema(config.source_types)
        table = pa.Table.from_pylist(rows, schema=schema)
        stamp = base_ts.strftime("%Y%m%dT%H%M%S")
        ref = BatchRef(month=month, batch_id=f"{batch_label}-{stamp}-{month}")
        written.append(_write_batch(landing, ref, table))
    return written


def _newest_record(table: Optional[pa.Table], key: int) -> Optional[dict]:
    if table is None:
        return None
    mine = table.filter(pc.equal(table["cons_acct_key"], key))
    if mine.num_rows == 0:
        return None
    rows = mine.to_pylist()
    return dict(max(rows, key=lambda r: r["base_ts"]))


def _nearest_earlier_record(landing: Path, key: int, month: str) -> Optional[dict]:
    index = parse_month(month)
    for back in range(1, 121):
        record = _newest_record(read_landing_month(landing, format_month(index - back)), key)
        if record is not None:
            return record
    return None
