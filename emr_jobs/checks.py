"""Integrity checks on the rows a step touched (the seed's checks, automated).

Run on the step's audit branches after both MERGEs and before publishing (emr_jobs/publish.py);
any failure raises IntegrityError and fails the job with `main` untouched, so the ledger
records the step FAILED and the operator is told which rule broke.
"""

from __future__ import annotations

from typing import Any, Dict, List

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from emr_jobs import transforms as tx
from emr_jobs.tables import Tables, summary_column_names

EXAMPLES = 5


class IntegrityError(RuntimeError):
    """One or more integrity checks failed; the message lists each with examples."""


def row_rules(config: Any, alias: str = "") -> Dict[str, str]:
    """SQL conditions that are TRUE for a summary row breaking a rule."""
    h = config.history_length
    p = f"{alias}." if alias else ""
    rules = {}
    for r in config.rolling_columns:
        rules[f"{r.name} has {h} elements"] = f"{p}{r.name} IS NULL OR size({p}{r.name}) != {h}"
        rules[f"{r.name}[0] equals {r.mapper_column}"] = f"NOT ({p}{r.name}[0] <=> {p}{r.mapper_column})"
    for g in config.grid_columns:
        rules[f"{g.name} matches {g.mapper_rolling_column}"] = f"NOT ({p}{g.name} <=> {tx.grid_sql(g, p)})"
        if not g.separator:
            rules[f"{g.name} is {h} characters"] = f"{p}{g.name} IS NULL OR length({p}{g.name}) != {h}"
    return rules


def check_rows(rows: DataFrame, config: Any, table: str) -> List[str]:
    key, month = config.key_column, config.month_column
    rules = row_rules(config)
    counts = rows.agg(*[F.sum(F.when(F.expr(cond), 1).otherwise(0)).alias(f"r{i}")
                        for i, cond in enumerate(rules.values())]).first()
    failures = []
    for i, (rule, cond) in enumerate(rules.items()):
        bad = int(counts[f"r{i}"] or 0) if counts else 0
        if bad:
            examples = [(r[0], r[1]) for r in rows.where(F.expr(cond)).select(key, month).limit(EXAMPLES).collect()]
            failures.append(f"{table}: {bad} row(s) break '{rule}', e.g. {examples}")
    return failures


def check_touched(spark: Any, tables: Tables, pairs: DataFrame) -> None:
    """Check summary rows at the touched (account, month) pairs and those accounts' latest rows.

    One aggregate query per table decides pass/fail; only a failure pays for the
    detailed queries that name rules and example rows."""
    if not _touched_rows_fail(spark, tables, pairs):
        return
    _explain_failures(spark, tables, pairs)


def _read(spark: Any, tables: Tables, table: str) -> DataFrame:
    """The step's own version of ``table``: its audit branch before publishing."""
    return spark.table(tables.written(table))


def _flags(config: Any) -> List[Any]:
    return [F.coalesce(F.expr(cond).cast("int"), F.lit(0)).alias(f"r{i}")
            for i, cond in enumerate(row_rules(config).values())]


def _touched_rows_fail(spark: Any, tables: Tables, pairs: DataFrame) -> bool:
    config = tables.config
    key, month = config.key_column, config.month_column
    months = sorted(r[0] for r in pairs.select(month).distinct().collect())
    if not months:
        return False
    columns = summary_column_names(config)
    # A small step's pairs are broadcast: it runs without adaptive execution, which would
    # otherwise be what turns these joins into broadcasts (docs/benchmarks.md).
    small = pairs.count() <= tx.BROADCAST_ROWS
    wanted, accounts = pairs, pairs.select(key)
    if small:
        wanted, accounts = F.broadcast(wanted), F.broadcast(accounts)
    # Each table is read back once (the queries below use it three times), released after.
    summary = (_read(spark, tables, tables.summary).where(F.col(month).isin(months))
               .join(wanted, [key, month], "left_semi").select(*columns)).persist(StorageLevel.MEMORY_AND_DISK)
    latest = (_read(spark, tables, tables.latest_summary).join(accounts, key, "left_semi")
              .select(*columns)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return _summary_rows_fail(summary, pairs, config) or _latest_rows_fail(summary, latest, config)
    finally:
        summary.unpersist()
        latest.unpersist()


def _summary_rows_fail(summary: DataFrame, pairs: DataFrame, config: Any) -> bool:
    """A touched pair missing or duplicated, or a row breaking a rule."""
    key, month = config.key_column, config.month_column
    rule_count = len(row_rules(config))
    per_row = summary.select(key, month, *_flags(config)).groupBy(key, month).agg(
        F.count(F.lit(1)).alias("_n"), *[F.max(f"r{i}").alias(f"r{i}") for i in range(rule_count)])
    summary_totals = pairs.join(per_row, [key, month], "left").agg(
        F.sum(F.when(F.col("_n").isNull(), 1).otherwise(0)).alias("missing"),
        F.sum(F.when(F.col("_n") > 1, 1).otherwise(0)).alias("dupes"),
        *[F.sum(f"r{i}").alias(f"r{i}") for i in range(rule_count)],
    ).first()
    return summary_totals is None or any(int(v or 0) for v in summary_totals)


def _latest_rows_fail(summary: DataFrame, latest: DataFrame, config: Any) -> bool:
    """A touched account's latest row missing, older than its newest touched row, duplicated,
    different from the summary row of its month, or breaking a rule."""
    key, month = config.key_column, config.month_column
    rule_count = len(row_rules(config))
    columns = summary_column_names(config)
    newest = summary.groupBy(key).agg(F.max(month).alias("_newest"))
    latest_agg = latest.select(key, month, *_flags(config)).groupBy(key).agg(
        F.count(F.lit(1)).alias("_ln"), F.max(month).alias("_lmonth"),
        *[F.max(f"r{i}").alias(f"l{i}") for i in range(rule_count)])
    same = summary.alias("s").join(latest.alias("t"), [key, month]).select(
        key, F.expr(tx.null_safe_differs("s", "t", [c for c in columns if c not in (key, month)]))
        .cast("int").alias("_differs"))
    latest_totals = (newest.join(latest_agg, key, "left").join(same, key, "left").agg(
        F.sum(F.when(F.col("_ln").isNull() | (F.col("_lmonth") < F.col("_newest")), 1).otherwise(0)).alias("stale"),
        F.sum(F.when(F.col("_ln") > 1, 1).otherwise(0)).alias("dupes"),
        F.sum(F.coalesce(F.col("_differs"), F.lit(0))).alias("differs"),
        *[F.sum(f"l{i}").alias(f"l{i}") for i in range(rule_count)],
    ).first())
    return latest_totals is None or any(int(v or 0) for v in latest_totals)


def _explain_failures(spark: Any, tables: Tables, pairs: DataFrame) -> None:
    config = tables.config
    key, month = config.key_column, config.month_column
    months = sorted(r[0] for r in pairs.select(month).distinct().collect())
    if not months:
        return
    summary = (_read(spark, tables, tables.summary).where(F.col(month).isin(months))
               .join(pairs, [key, month], "left_semi"))
    failures: List[str] = []
    dupes = summary.groupBy(key, month).count().where("count > 1")
    found = [(r[0], r[1]) for r in dupes.limit(EXAMPLES).collect()]
    if found:
        failures.append(f"{tables.summary}: duplicate ({key}, {month}) rows, e.g. {found}")
    missing = pairs.join(summary, [key, month], "left_anti").limit(EXAMPLES).collect()
    if missing:
        failures.append(f"{tables.summary}: touched rows missing, e.g. {[(r[0], r[1]) for r in missing]}")
    failures += check_rows(summary, config, tables.summary)

    accounts = pairs.select(key).distinct()
    latest = _read(spark, tables, tables.latest_summary).join(accounts, key, "left_semi")
    failures += check_rows(latest, config, tables.latest_summary)
    ldupes = [r[0] for r in latest.groupBy(key).count().where("count > 1").limit(EXAMPLES).collect()]
    if ldupes:
        failures.append(f"{tables.latest_summary}: several rows per account, e.g. {ldupes}")
    newest_touched = summary.groupBy(key).agg(F.max(month).alias("_newest"))
    stale = (
        newest_touched.join(latest.select(key, F.col(month).alias("_latest")), key, "left")
        .where(F.col("_latest").isNull() | (F.col("_latest") < F.col("_newest")))
        .limit(EXAMPLES).collect()
    )
    if stale:
        failures.append(
            f"{tables.latest_summary}: older than the account's newest summary row, e.g. "
            f"{[(r[key], r['_newest'], r['_latest']) for r in stale]}"
        )
    columns = summary_column_names(config)
    same_month = summary.alias("s").join(latest.alias("t"), [key, month])
    differs = same_month.where(F.expr(tx.null_safe_differs("s", "t", [c for c in columns if c not in (key, month)])))
    diff = [r[0] for r in differs.select(key).limit(EXAMPLES).collect()]
    if diff:
        failures.append(f"{tables.latest_summary}: differs from the summary row of the same month, e.g. {diff}")
    raise IntegrityError("integrity checks failed:\n  " + "\n  ".join(
        failures or ["the aggregate check counted a broken row that the detailed queries could not show"]))
