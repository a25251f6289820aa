"""The amended-history feed (docs/architecture.md, "Amended-history feed"): what a step changed
in rows that readers may already have seen.

A backfill or re-run step writes, beside its summary rows, one change record per (account,
month) it wrote: whether the row is new in the past ("added": a gap fill, a late month, a new
account backfilled), had its own month's record replaced ("corrected") or only its history
arrays moved ("history"); the step's records that caused it (month, batch, base_ts); the
scalar columns that changed (old -> new) and the history positions that changed. Forward and
initial steps only add rows after everything summarised and write no change records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from datadominion.config import PipelineConfig
from datadominion.schema import SOURCE_BATCH_COLUMN
from emr_jobs import transforms as tx
from emr_jobs.tables import change_columns

FEED_MODES = ("backfill", "rerun")
STORED = "_stored"  # beside a written row: the version the step found (a struct; NULL: none)


@dataclass(frozen=True)
class FeedStep:
    """The step a change record names."""

    step_id: str
    mode: str
    changed_at: datetime


def feed_for(step_id: str, mode: str, started: datetime) -> Optional[FeedStep]:
    return FeedStep(step_id, mode, started) if mode in FEED_MODES else None


def change_records(compared: DataFrame, applied: DataFrame, feed: FeedStep, config: PipelineConfig,
                   accounts: int) -> DataFrame:
    """One record per ``compared`` row: a written summary row that differs from the version
    the step found, which it carries as the struct column STORED (NULL: the step found none);
    ``applied``: the step's records that were applied (key, month, ``_mi``, base_ts,
    source_batch), of at most ``accounts`` accounts."""
    key, month = config.key_column, config.month_column
    by_account = tx.broadcast_when_few(_records_by_account(applied, config), accounts)
    rows = tx.with_month_index(compared, config).join(by_account, key, "left").withColumn(
        "causes", _causes_in_window(config))
    kind = (F.when(F.col(STORED).isNull(), "added")
            .when(F.array_contains(F.col("causes.month"), F.col(month)), "corrected")
            .otherwise("history"))
    out = rows.select(
        F.lit(feed.changed_at).cast("timestamp").alias("changed_at"), F.lit(feed.step_id).alias("step_id"),
        F.lit(feed.mode).alias("step_mode"), F.col(key), F.col(month), kind.alias("kind"), F.col("causes"),
        _scalar_changes(config).alias("scalar_changes"), _history_changes(config).alias("history_changes"))
    return out.select(*[F.col(name).cast(kind_) for name, kind_ in change_columns(config)])


def _records_by_account(applied: DataFrame, config: PipelineConfig) -> DataFrame:
    """Per account: its applied records, each with its month index. A written row's causes are
    picked out of its account's list where the row lies, so the wide written rows meet the
    (few) records without being shuffled."""
    month, ts = config.month_column, config.timestamp_column
    record = F.struct(F.col(tx.MI).alias("_cmi"), F.struct(
        F.col(month).alias("month"), F.col(SOURCE_BATCH_COLUMN).alias("batch"), F.col(ts).alias("base_ts")
    ).alias("cause"))
    return applied.groupBy(config.key_column).agg(F.collect_list(record).alias("_records"))


def _causes_in_window(config: PipelineConfig) -> Column:
    """The row's causes: its account's applied records within its history window, sorted
    (empty when there are none)."""
    h = config.history_length
    within = F.filter("_records", lambda r: r["_cmi"].between(F.col(tx.MI) - (h - 1), F.col(tx.MI)))
    causes = F.sort_array(F.transform(within, lambda r: r["cause"]))
    return F.coalesce(causes, F.expr("array()").cast(_type("causes", config)))


def _type(column: str, config: PipelineConfig) -> str:
    return dict(change_columns(config))[column]


def _scalar_changes(config: PipelineConfig) -> Column:
    """(column, old, new) of each scalar that differs; empty for an added row."""
    fixed = (config.key_column, config.month_column)
    entries = [
        F.when(F.col(STORED).isNotNull() & ~F.col(c).eqNullSafe(F.col(f"{STORED}.{c}")),
               F.struct(F.lit(c).alias("column"), F.col(f"{STORED}.{c}").cast("string").alias("old"),
                        F.col(c).cast("string").alias("new")))
        for c in config.summary_scalar_types if c not in fixed
    ]
    return F.filter(F.array(*entries), lambda x: x.isNotNull())


def _history_changes(config: PipelineConfig) -> Column:
    """(rolling column, positions) where the history differs; empty for an added row. Positions
    are only searched in an array that differs: Spark runs the lambda row by row, interpreted,
    and most of a row's arrays are unchanged (one correction moves one or two of seven)."""
    h = config.history_length
    entries = [
        F.expr(f"named_struct('column', '{r.name}', 'positions', CASE WHEN {STORED} IS NULL "
               f"OR {r.name} <=> {STORED}.{r.name} THEN array() ELSE filter(sequence(0, {h - 1}), "
               f"i -> NOT (element_at({r.name}, i + 1) <=> element_at({STORED}.{r.name}, i + 1))) END)")
        for r in config.rolling_columns
    ]
    return F.filter(F.array(*entries), lambda x: F.size(x["positions"]) > 0)


def counts_by_kind(records: DataFrame) -> Dict[str, int]:
    return {str(r[0]): int(r[1]) for r in records.groupBy("kind").count().collect()}
