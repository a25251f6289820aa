"""From-scratch recomputation of summary and latest_summary from accounts_all, and the
comparison the `validate` command makes against the tables.

Written along a different path from the incremental engine on purpose (a window over each
account's months instead of per-account point maps), so the two check each other.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from datadominion.config import PipelineConfig
from emr_jobs import transforms as tx
from emr_jobs.tables import Tables, summary_column_names

_SIDE = "_surplus"  # how many more times a row is in the table than in the recomputation


def recompute_summary(accounts_all: DataFrame, config: PipelineConfig) -> DataFrame:
    h, key = config.history_length, config.key_column
    rows = tx.with_month_index(
        tx.newest_per_account_month(tx.to_summary_scalars(accounts_all, config), config), config)
    window = Window.partitionBy(key).orderBy(tx.MI).rangeBetween(-(h - 1), 0)
    rows = rows.withColumn("_recent", F.collect_list(F.struct(F.col(tx.MI).alias("m"), tx.rolling_values(config)
                                                              .alias("v"))).over(window))
    for r in config.rolling_columns:
        rows = rows.withColumn(r.name, F.expr(
            f"transform(sequence(0, {h - 1}), i -> element_at(filter(_recent, p -> p.m = {tx.MI} - i), 1).v.{r.name})"
        ))
    return tx.with_grids(rows, config).select(*summary_column_names(config))


def recompute_latest(summary: DataFrame, config: PipelineConfig) -> DataFrame:
    return tx.newest_per_account(summary, config)


def compare(actual: DataFrame, expected: DataFrame, limit: int = 5) -> Tuple[int, int, List[Any], List[Any]]:
    """(rows only in actual, rows only in expected, examples of each), counted as a multiset
    difference (as ``exceptAll``) in one aggregation: each distinct row with how many more
    times it is in ``actual`` than in ``expected``. Only a difference pays for the examples."""
    surplus = (actual.withColumn(_SIDE, F.lit(1)).unionByName(expected.withColumn(_SIDE, F.lit(-1)))
               .groupBy(*actual.columns).agg(F.sum(_SIDE).alias(_SIDE)).where(F.col(_SIDE) != 0)).cache()
    try:
        counts = surplus.agg(F.sum(F.greatest(F.col(_SIDE), F.lit(0))).alias("extra"),
                             F.sum(F.greatest(-F.col(_SIDE), F.lit(0))).alias("missing")).first()
        extra, missing = (int(counts["extra"] or 0), int(counts["missing"] or 0)) if counts else (0, 0)
        if not (extra or missing):
            return 0, 0, [], []
        examples = [surplus.where(F.col(_SIDE) > 0 if side else F.col(_SIDE) < 0).drop(_SIDE).limit(limit).collect()
                    for side in (True, False)]
        return extra, missing, examples[0], examples[1]
    finally:
        surplus.unpersist()


def validate_tables(spark: Any, tables: Tables) -> List[str]:
    """Every difference between the tables and a from-scratch recomputation, described."""
    config = tables.config
    columns = summary_column_names(config)
    expected_summary = recompute_summary(spark.table(tables.accounts_all), config).cache()
    problems: List[str] = []
    for name, actual, expected in (
        (tables.summary, spark.table(tables.summary).select(*columns), expected_summary),
        (tables.latest_summary, spark.table(tables.latest_summary).select(*columns),
         recompute_latest(expected_summary, config)),
    ):
        extra, missing, extra_rows, missing_rows = compare(actual, expected)
        if extra or missing:
            problems.append(f"{name}: {extra} row(s) differ from or are absent in the recomputation, "
                            f"{missing} recomputed row(s) absent or different in the table")
            key, month = config.key_column, config.month_column
            problems += [f"  table has        ({r[key]}, {r[month]})" for r in extra_rows]
            problems += [f"  recomputed has   ({r[key]}, {r[month]})" for r in missing_rows]
    expected_summary.unpersist()
    return problems
