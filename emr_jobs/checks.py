"""Integrity checks on the rows a step touched (the seed's checks, automated).

Run on the step's audit branches after both writes and before publishing (emr_jobs/publish.py);
any failure raises IntegrityError and fails the job with `main` untouched, so the ledger
records the step FAILED and the operator is told which rule broke.
"""

from __future__ import annotations

import operator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import reduce
from typing import Any, Dict, List, Literal, Optional, Set, Tuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from emr_jobs import codegen, file_reads
from emr_jobs import transforms as tx
from emr_jobs.tables import Tables, summary_column_names

EXAMPLES = 5
ReadingMode = Literal["named", "files first", "whole"]  # how the checks read the touched rows (_Reading)


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
    counts = rows.agg(*[_count(F.expr(cond)).alias(f"r{i}") for i, cond in enumerate(rules.values())]).first()
    failures = []
    for i, (rule, cond) in enumerate(rules.items()):
        bad = int(counts[f"r{i}"] or 0) if counts else 0
        if bad:
            examples = [(r[0], r[1]) for r in rows.where(F.expr(cond)).select(key, month).limit(EXAMPLES).collect()]
            failures.append(f"{table}: {bad} row(s) break '{rule}', e.g. {examples}")
    return failures


def check_touched(spark: Any, tables: Tables, pairs: DataFrame, keys: Optional[Tuple[Any, ...]] = None,
                  among_untouched: bool = False, new_rows: bool = False) -> None:
    """Check summary rows at the touched (account, month) pairs and those accounts' latest rows.

    One aggregate query per table decides pass/fail; only a failure pays for the
    detailed queries that name rules and example rows. ``keys``: accounts named by the step
    (any superset of the pairs' accounts), so their reads open only those accounts' files;
    without them the pairs' accounts are named when they are few. ``among_untouched``: the
    step wrote its rows (MERGEd, or deleted and appended) into partitions of rows it did not
    touch (a backfill); when its accounts are not named, the wide rows are then read from only
    the files that hold a touched row (:func:`_rows_at`). ``new_rows``: the step appended one row
    per account to months that held none (a forward month's step); when its accounts are not
    named, the tables are compared by order-free digests (:func:`_new_rows_fail`)."""
    key, month = tables.config.key_column, tables.config.month_column
    per_month = pairs.groupBy(month).count().collect()  # the touched months and their rows, once
    if not per_month:
        return
    months = sorted(r[0] for r in per_month)
    expected = sum(int(r[1]) for r in per_month)  # one row per (account, month) the step computed
    named_keys = keys if keys else tx.named_keys(pairs, key)
    named = tx.among(named_keys, key)
    reading: ReadingMode = "named" if named_keys is not None else "files first" if among_untouched else "whole"
    if new_rows and reading == "whole":
        failing = _new_rows_fail(spark, tables, pairs, months)
    else:
        failing = _touched_rows_fail(spark, tables, pairs, named, months, expected, reading)
    if not failing:
        return
    _explain_failures(spark, tables, pairs, named, months)


def _read(spark: Any, tables: Tables, table: str) -> DataFrame:
    """The step's own version of ``table``: its audit branch before publishing."""
    return spark.table(tables.written(table))


def _broken(config: Any) -> Column:
    """How many row rules the row breaks: one narrow column whatever the number of rules (the
    detailed queries name them when a step fails)."""
    flags = [F.coalesce(F.expr(cond).cast("int"), F.lit(0)) for cond in row_rules(config).values()]
    return reduce(operator.add, flags)


def _fingerprint(config: Any) -> Any:
    """A 64-bit hash of every column but the key and month, exact about NULLs
    (:func:`transforms.exact_hash`); an array is hashed through its JSON text, which spells out
    each NULL element in its place."""
    arrays = {r.name for r in config.rolling_columns}
    return tx.exact_hash([F.to_json(F.col(name)) if name in arrays else F.col(name)
                          for name in summary_column_names(config)
                          if name not in (config.key_column, config.month_column)])


def _narrow(rows: DataFrame, config: Any) -> DataFrame:
    """Each row as its key, month (as text and as a number), fingerprint and count of broken
    rules: the only columns the checks join and aggregate, so no wide row is shuffled or
    cached. The aggregates take the month as a number: Spark aggregates by hashing only when
    every aggregate's state is fixed-width; a text month sorted every narrow row instead."""
    month = config.month_column
    return rows.select(config.key_column, month, tx.month_index(F.col(month)).alias(tx.MI),
                       _fingerprint(config).alias("_fp"), _broken(config).alias("_broken"))


def _touched_rows_fail(spark: Any, tables: Tables, pairs: DataFrame, named: Column, months: List[str],
                       expected: int, reading: ReadingMode) -> bool:
    """One query: each table's touched rows read once and narrowed, aggregated per account on
    both sides, joined, summed. Any count other than the touched pairs found, or any non-zero
    sum, is a failure."""
    config = tables.config
    key, month = config.key_column, config.month_column
    small = expected <= tx.BROADCAST_ROWS
    accounts = pairs.select(key) if small else pairs.select(key).distinct()  # an inner join must not repeat rows
    with ExitStack() as stack:
        stack.enter_context(codegen.whole_partition_scan(spark, reading == "whole"))
        how = _Reading(reading, stack)
        summary_rows = _rows_at(spark, tables, tables.summary, F.col(month).isin(months) & named, pairs,
                                [key, month], small, how, (month, months))
        latest_rows = _rows_at(spark, tables, tables.latest_summary, named, accounts, [key], small, how)
        return _counts_fail(_touched(summary_rows, pairs, [key, month], small, config),
                            _touched(latest_rows, accounts, [key], small, config), config, expected)


def _new_rows_fail(spark: Any, tables: Tables, pairs: DataFrame, months: List[str]) -> bool:
    """One query for a step that appended one row per account to ``months``, which held no row
    before it: those months then hold the step's summary rows and nothing else, and
    latest_summary's rows at those months must be the very same rows. Each multiset is reduced
    to an order-free digest (:func:`_digest`) as it is read, so no row is shuffled or joined per
    account: summary's (key, month) pairs against the step's, every column of summary's rows
    against latest_summary's. A touched account's latest row that is missing, stale or altered
    leaves the digest of its months; one kept beside it at an older month is found by counting
    latest_summary's rows per key, a narrow aggregate (docs/decisions.md, "Checks of a forward
    month by digests")."""
    config = tables.config
    key, month = config.key_column, config.month_column
    in_months = F.col(month).isin(months)
    pair_hash = F.xxhash64(key, month)
    row_hash = F.xxhash64(key, month, _fingerprint(config))
    with ExitStack() as stack:
        how = _Reading("whole", stack)
        stack.enter_context(codegen.whole_partition_scan(spark))
        summary = _rows_at(spark, tables, tables.summary, in_months, pairs, [key, month], False, how, (month, months))
        latest = _rows_at(spark, tables, tables.latest_summary, F.lit(True), pairs, [key], False, how)
        found = (summary.select(*_digest(pair_hash, "s_pairs"), *_digest(row_hash, "s_rows"),
                                F.sum(_broken(config)).alias("s_broken"))
                 .crossJoin(latest.where(in_months).select(*_digest(row_hash, "l_rows"),
                                                           F.sum(_broken(config)).alias("l_broken")))
                 .crossJoin(pairs.select(*_digest(pair_hash, "pairs")))
                 .crossJoin(latest.groupBy(key).count().select(_count(F.col("count") > 1).alias("l_repeated")))
                 .first())
    return found is None or _digests_differ(found.asDict())


DIGEST_PART_BITS = 22  # a 64-bit hash summed in three parts: each sum exact in a long up to 2^41 rows


def _digest(hashed: Column, name: str) -> List[Column]:
    """An order-free digest of a multiset of rows: their count and the sums of three parts of
    each row's 64-bit hash. Equal digests mean equal multisets but for odds of ~2^-64 (a
    missing, extra, repeated or altered row moves the sums); the hash itself is not summed, as
    a sum of billions of 64-bit values overflows."""
    mask = F.lit((1 << DIGEST_PART_BITS) - 1)
    parts = [F.sum(F.shiftrightunsigned(hashed, DIGEST_PART_BITS * i).bitwiseAND(mask)).alias(f"{name}_{i}")
             for i in range(3)]
    return [F.count(F.lit(1)).alias(f"{name}_n"), *parts]


def _digests_differ(found: Dict[str, Any]) -> bool:
    """True when the digests tell of anything wrong (:func:`_new_rows_fail`)."""
    def same(a: str, b: str) -> bool:
        return all(found[f"{a}_{part}"] == found[f"{b}_{part}"] for part in ("n", 0, 1, 2))

    return not (same("s_pairs", "pairs") and same("s_rows", "l_rows")
                and not found["s_broken"] and not found["l_broken"] and not found["l_repeated"])


@dataclass(frozen=True)
class _Reading:
    """How the checks read a table's touched rows: ``named`` (through Iceberg, which opens only
    the files that can hold the step's named accounts), ``files first`` (a backfill of
    accounts too many to name, MERGEd among rows it did not touch) or ``whole`` (the touched
    months whole: a forward month's, written by the step); ``stack`` holds what a read
    stages until the checks' query has run."""

    mode: ReadingMode
    stack: ExitStack


def _rows_at(spark: Any, tables: Tables, table: str, where: Column, wanted: DataFrame, on: List[str], small: bool,
             reading: _Reading, partitions: Optional[Tuple[str, List[str]]] = None) -> DataFrame:
    """``table``'s rows as the step wrote them that ``where`` keeps. Read ``whole``, by Spark's
    own Parquet reader when no delete file applies (:func:`file_reads.as_written`). Read
    ``files first``, only those of the data files that hold a ``wanted`` row: its rows sit in
    every file of their months, so a plain read decodes every history array of those months
    (Iceberg filters by ``_file`` only after reading). The files are found by a read of ``on``
    and ``_file``, primitive columns that Iceberg reads vectorized, and read through Iceberg
    with their delete files, or by Spark's Parquet reader when none applies (a backfill's rows
    once replaced: the files it appended; emr_jobs/file_reads.py); every row at a wanted key, a duplicate
    too, lives in one of them, so the checks see the same rows."""
    rows = _read(spark, tables, table).where(where)
    if reading.mode == "whole":
        written = reading.stack.enter_context(
            file_reads.as_written(spark, table, tables.audit_branch, rows.schema, partitions))
        return rows if written is None else written.where(where)
    if reading.mode != "files first":
        return rows
    files = _files_holding(rows, wanted, on, small)
    found = reading.stack.enter_context(
        file_reads.files_of(spark, table, tables.audit_branch, files, rows.schema, partitions))
    return rows if found is None else found.where(where)


def _files_holding(rows: DataFrame, wanted: DataFrame, on: List[str], small: bool) -> Set[str]:
    """The data files of ``rows`` that hold a row at a ``wanted`` key (``on``: the key, or the
    key and month). Pairs are met as each account's span of months, joined on the key alone:
    Spark's hash join on one long key is its fastest, while a key and month hashed the month
    text of every row scanned (docs/decisions.md). The span's files are a superset of the
    pairs' (the same files unless an account's pairs skip months)."""
    key, month = on[0], (on[1] if len(on) > 1 else None)
    if month is not None:
        wanted = wanted.groupBy(key).agg(F.min(month).alias("_lo"), F.max(month).alias("_hi"))
    probe = (F.broadcast(wanted) if small else wanted).alias("w")
    meets = F.col(f"r.{key}") == F.col(f"w.{key}")
    if month is not None:
        meets = meets & F.col(f"r.{month}").between(F.col("w._lo"), F.col("w._hi"))
    held = rows.select(*on, file_reads.FILE_COLUMN).alias("r").join(probe, meets, "left_semi")
    with codegen.whole_partition_scan(rows.sparkSession):  # every row of the touched months
        return {str(r[0]) for r in held.select(file_reads.FILE_COLUMN).distinct().collect()}


def _counts_fail(summary: DataFrame, latest: DataFrame, config: Any, expected: int) -> bool:
    """Aggregate both tables' narrow touched rows: True when anything is wrong."""
    key, month = config.key_column, tx.MI
    touched = summary.groupBy(key).agg(
        F.count(F.lit(1)).alias("_rows"), F.countDistinct(month).alias("_months"),
        F.max(month).alias("_newest"), F.max_by("_fp", month).alias("_fp"), F.sum("_broken").alias("_broken"))
    latest_rows = latest.groupBy(key).agg(
        F.count(F.lit(1)).alias("_ln"), F.max(month).alias("_lmonth"), F.max_by("_fp", month).alias("_lfp"),
        F.sum("_broken").alias("_lbroken"))
    totals = touched.join(latest_rows, key, "left").agg(
        F.sum("_months").alias("found"),
        _count(F.col("_rows") > F.col("_months")).alias("duplicate_pairs"),
        _count(F.col("_ln").isNull() | (F.col("_lmonth") < F.col("_newest"))).alias("stale_latest"),
        _count(F.col("_ln") > 1).alias("duplicate_latest"),
        _count((F.col("_lmonth") == F.col("_newest")) & (F.col("_lfp") != F.col("_fp"))).alias("latest_differs"),
        F.sum("_broken").alias("broken_rules"), F.sum("_lbroken").alias("broken_latest_rules"),
    ).first()
    if totals is None or int(totals["found"] or 0) != expected:  # a touched pair missing
        return True
    return any(int(v or 0) for name, v in totals.asDict().items() if name != "found")


def _count(condition: Any) -> Any:
    """How many rows meet ``condition``."""
    return F.sum(F.when(condition, 1).otherwise(0))


def _touched(rows: DataFrame, wanted: DataFrame, on: List[str], small: bool, config: Any) -> DataFrame:
    """The narrow form of ``rows`` at the ``wanted`` keys. A small key set is broadcast and
    filters the scan before any row is hashed (a small step runs without adaptive execution,
    which would otherwise choose the broadcast: docs/decisions.md). A large one meets the rows
    after they are narrowed, so only narrow rows are shuffled (an inner join: Spark would move
    a semi-join below the projection, shuffling the wide rows)."""
    if small:
        return _narrow(rows.join(F.broadcast(wanted), on, "left_semi"), config)
    return _narrow(rows, config).join(wanted, on)


def _explain_failures(spark: Any, tables: Tables, pairs: DataFrame, named: Column, months: List[str]) -> None:
    config = tables.config
    key, month = config.key_column, config.month_column
    summary = (_read(spark, tables, tables.summary).where(F.col(month).isin(months) & named)
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
    latest = _read(spark, tables, tables.latest_summary).where(named).join(accounts, key, "left_semi")
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
