"""From-scratch recomputation of summary and latest_summary from accounts_all, and the
comparison the `validate` command makes against the tables.

Written along a different path from the incremental engine on purpose (a window over each
account's months instead of per-account point maps), so the two check each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from datadominion.config import PipelineConfig
from emr_jobs import transforms as tx
from emr_jobs.tables import Tables, summary_column_names

_SIDE = "_surplus"  # how many more times a row is in the table than in the recomputation
_IN_ACTUAL = "_in_table"  # how many times it is in the table


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


@dataclass(frozen=True)
class Comparison:
    """A table against its recomputation, as a multiset difference (as ``exceptAll``)."""

    rows: int  # rows the table holds
    extra: int  # rows only in the table
    missing: int  # recomputed rows not in the table
    extra_examples: List[Any]
    missing_examples: List[Any]


@dataclass(frozen=True)
class Validation:
    problems: List[str]  # empty when both tables equal their recomputation
    rows: Dict[str, int]  # rows each table holds, by its name


def compare(actual: DataFrame, expected: DataFrame, limit: int = 5) -> Comparison:
    """One aggregation over each distinct row with how many more times it is in ``actual`` than
    in ``expected``, which also counts ``actual``'s rows; only a difference pays for the
    examples (a second pass, read when the tables are already wrong)."""
    grouped = (actual.withColumn(_SIDE, F.lit(1)).unionByName(expected.withColumn(_SIDE, F.lit(-1)))
               .groupBy(*actual.columns).agg(F.sum(_SIDE).alias(_SIDE),
                                             F.count_if(F.col(_SIDE) > 0).alias(_IN_ACTUAL)))
    counts = grouped.agg(F.sum(_IN_ACTUAL).alias("rows"),
                         F.sum(F.greatest(F.col(_SIDE), F.lit(0))).alias("extra"),
                         F.sum(F.greatest(-F.col(_SIDE), F.lit(0))).alias("missing")).first()
    rows, extra, missing = (int(counts[c] or 0) for c in ("rows", "extra", "missing")) if counts else (0, 0, 0)
    if not (extra or missing):
        return Comparison(rows, 0, 0, [], [])
    examples = [grouped.where(F.col(_SIDE) > 0 if side else F.col(_SIDE) < 0).drop(_SIDE, _IN_ACTUAL)
                .limit(limit).collect() for side in (True, False)]
    return Comparison(rows, extra, missing, examples[0], examples[1])


def validate_tables(spark: Any, tables: Tables) -> Validation:
    """Every difference between the tables and a from-scratch recomputation, described, and
    the rows each table holds (counted by the same aggregation)."""
    config = tables.config
    columns = summary_column_names(config)
    expected_summary = recompute_summary(spark.table(tables.accounts_all), config).cache()
    problems: List[str] = []
    rows: Dict[str, int] = {}
    for name, actual, expected in (
        (tables.summary, spark.table(tables.summary).select(*columns), expected_summary),
        (tables.latest_summary, spark.table(tables.latest_summary).select(*columns),
         recompute_latest(expected_summary, config)),
    ):
        found = compare(actual, expected)
        rows[name] = found.rows
        if found.extra or found.missing:
            problems.append(f"{name}: {found.extra} row(s) differ from or are absent in the recomputation, "
                            f"{found.missing} recomputed row(s) absent or different in the table")
            key, month = config.key_column, config.month_column
            problems += [f"  table has        ({r[key]}, {r[month]})" for r in found.extra_examples]
            problems += [f"  recomputed has   ({r[key]}, {r[month]})" for r in found.missing_examples]
    expected_summary.unpersist()
    return Validation(problems, rows)
