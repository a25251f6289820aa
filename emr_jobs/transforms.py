"""Pure DataFrame -> DataFrame transforms of the summary engine (no table I/O here).

Vocabulary: a *month index* (``_mi``) is year*12 + month-1, so history position i of a
row at month m holds the value of month m - i. Every transform keeps the semantics of
docs/architecture.md, "Table semantics": c_history[i] = value of c at month (m - i), NULL where that month
has no record.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from datadominion.config import ColumnTransformation, GridColumn, PipelineConfig
from datadominion.schema import SPARK_SQL_TYPES
from emr_jobs.tables import summary_column_names

MI = "_mi"


def month_index(column: Column) -> Column:
    return F.substring(column, 1, 4).cast("int") * 12 + F.substring(column, 6, 2).cast("int") - 1


def _transformation(rule: ColumnTransformation, spark_type: str) -> Column:
    column = F.col(rule.column)
    replacement = F.lit(rule.replacement).cast(spark_type)
    if rule.rule == "allowed_values":
        invalid = ~column.isin(list(rule.values or []))
    else:
        invalid = F.lit(False)
        if rule.min is not None:
            invalid = invalid | (column < F.lit(rule.min))
        if rule.max is not None:
            invalid = invalid | (column > F.lit(rule.max))
    # A NULL value is not invalid: when(NULL) falls through to the value itself.
    return F.when(invalid, replacement).otherwise(column)


def to_summary_scalars(source: DataFrame, config: PipelineConfig, carry: Sequence[str] = ()) -> DataFrame:
    """accounts_all rows -> summary scalar columns: renamed per ``columns``, cleaned per
    ``column_transformations``; ``carry`` columns ride along unchanged."""
    df = source.select(*[F.col(src).alias(dest) for src, dest in config.columns.items()], *carry)
    types = config.summary_scalar_types
    for rule in config.column_transformations:
        df = df.withColumn(rule.column, _transformation(rule, SPARK_SQL_TYPES[types[rule.column]]))
    return df


def newest_per_account(rows: DataFrame, config: PipelineConfig) -> DataFrame:
    """Each account's row of its newest month (latest_summary's content)."""
    window = Window.partitionBy(config.key_column).orderBy(F.col(config.month_column).desc())
    return rows.withColumn("_rn", F.row_number().over(window)).where("_rn = 1").drop("_rn")


def newest_per_account_month(df: DataFrame, config: PipelineConfig, tie_break: Optional[str] = None) -> DataFrame:
    """One row per (account, month): the greatest base_ts wins. Ties are rejected at
    ingest as conflicting duplicates; identical copies collapse here, the greatest
    ``tie_break`` (e.g. the batch the copy came from) kept, so every evaluation of the frame
    keeps the same copy."""
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    order = [F.col(ts).desc()] + ([F.col(tie_break).desc_nulls_last()] if tie_break else [])
    window = Window.partitionBy(key, month).orderBy(*order)
    # Shuffled by the account alone: each later grouping or join per account (the step's span
    # of months, its classification) then finds the rows in place, not shuffled and sorted again.
    by_account = df.repartition(key)
    return by_account.withColumn("_rn", F.row_number().over(window)).where("_rn = 1").drop("_rn")


def with_month_index(df: DataFrame, config: PipelineConfig) -> DataFrame:
    return df.withColumn(MI, month_index(F.col(config.month_column)))


def rolling_values(config: PipelineConfig) -> Column:
    """The struct of this month's rolling values, named after the rolling columns."""
    return F.struct(*[F.col(r.mapper_column).alias(r.name) for r in config.rolling_columns])


def monthly_points(rows: DataFrame, config: PipelineConfig) -> DataFrame:
    """Each row as a point of :func:`histories_from_points`: key, ``_mi``, ``_vals``."""
    return rows.select(config.key_column, MI, rolling_values(config).alias("_vals"))


def grid_sql(grid: GridColumn, prefix: str = "") -> str:
    """SQL of a grid: one character per month of the rolling array, placeholder for NULL (an
    empty string for a NULL array). A native expression, not a lambda over the array: Spark
    evaluates higher-order functions interpreted, row by row, even in generated code."""
    placeholder = grid.placeholder.replace("'", "''")
    separator = grid.separator.replace("'", "''")
    array = f"{prefix}{grid.mapper_rolling_column}"
    return f"coalesce(array_join(CAST({array} AS ARRAY<STRING>), '{separator}', '{placeholder}'), '')"


def with_grids(df: DataFrame, config: PipelineConfig) -> DataFrame:
    for grid in config.grid_columns:
        df = df.withColumn(grid.name, F.expr(grid_sql(grid)))
    return df


def shift_forward(rows: DataFrame, config: PipelineConfig) -> DataFrame:
    """Rows one month past an account's latest row: ``[v] + NULL*(gap-1) + old[0:H-gap]``.

    Input columns: summary scalars, ``_mi``, ``_lmi`` (latest month index or NULL) and
    ``_old_<rolling>`` (the latest row's arrays). The hot path of a forward month.
    """
    h = config.history_length
    out = rows
    for r in config.rolling_columns:
        element = SPARK_SQL_TYPES[config.rolling_type(r)]
        fresh = f"concat(array({r.mapper_column}), array_repeat(CAST(NULL AS {element}), {h - 1}))"
        shifted = (
            f"concat(array({r.mapper_column}), array_repeat(CAST(NULL AS {element}), {MI} - _lmi - 1), "
            f"slice(_old_{r.name}, 1, {h} - ({MI} - _lmi)))"
        )
        out = out.withColumn(
            r.name, F.expr(f"CASE WHEN _lmi IS NULL OR {MI} - _lmi >= {h} THEN {fresh} ELSE {shifted} END")
        )
    return with_grids(out, config).select(*summary_column_names(config))


def histories_from_points(targets: DataFrame, points: DataFrame, config: PipelineConfig) -> DataFrame:
    """Build the rolling arrays of ``targets`` from every known monthly value of their accounts.

    targets: summary scalar columns + ``_mi`` (rows to write);
    points:  key, ``_mi``, ``_vals`` (struct of rolling values), at most one per (key, month),
             covering at least months [target - H + 1, target] of every target.
    Per account the points become a dense array over [min - H + 1, max]; a target's history
    is the reversed H-long slice ending at its month.
    """
    h = config.history_length
    key = config.key_column
    per_account = (
        points.groupBy(key)
        .agg(
            F.map_from_entries(F.collect_list(F.struct(MI, "_vals"))).alias("_pts"),
            (F.min(MI) - (h - 1)).alias("_lo"),
            F.max(MI).alias("_hi"),
        )
        .withColumn("_dense", F.expr("transform(sequence(_lo, _hi), m -> element_at(_pts, m))"))
        .select(key, "_lo", "_dense")
    )
    joined = targets.join(per_account, key).withColumn(
        "_hist", F.expr(f"reverse(slice(_dense, {MI} - _lo - {h - 1} + 1, {h}))")
    )
    for r in config.rolling_columns:  # each field of the structs as an array (no lambda: see grid_sql)
        joined = joined.withColumn(r.name, F.col("_hist").getField(r.name))
    return with_grids(joined, config).select(*summary_column_names(config))


def points_from_arrays(latest: DataFrame, config: PipelineConfig) -> DataFrame:
    """Expand a latest row's arrays back into monthly points (position i -> month lmi - i)."""
    key = config.key_column
    zipped = F.arrays_zip(*[F.col(f"_old_{r.name}").alias(r.name) for r in config.rolling_columns])
    return (
        latest.where(F.col("_lmi").isNotNull())
        .select(key, "_lmi", F.posexplode(zipped).alias("_pos", "_z"))
        .select(
            key,
            (F.col("_lmi") - F.col("_pos")).alias(MI),
            F.struct(*[F.col(f"_z.{r.name}").alias(r.name) for r in config.rolling_columns]).alias("_vals"),
        )
    )


def touched_by(months_column: str, config: PipelineConfig) -> Column:
    """True for a row whose month lies within H-1 months after one of ``months_column``."""
    h = config.history_length
    return F.expr(f"exists({months_column}, x -> {MI} - x BETWEEN 0 AND {h - 1})")


# Small key sets (backfill accounts, a step's touched pairs) up to this many rows are
# broadcast by hint: small steps run without adaptive execution, which would otherwise be
# what turns those joins into broadcasts (docs/decisions.md). 1M (key, month) pairs ~30 MB.
BROADCAST_ROWS = 1_000_000


def broadcast_when_few(df: DataFrame, rows: int) -> DataFrame:
    """``df`` with a broadcast hint when its ``rows`` are at most BROADCAST_ROWS."""
    return F.broadcast(df) if rows <= BROADCAST_ROWS else df


# Iceberg prunes manifests, data files and Parquet row groups by an IN predicate's values only
# up to 200 of them (IN_PREDICATE_LIMIT of ManifestEvaluator, InclusiveMetricsEvaluator,
# ParquetMetricsRowGroupFilter); a step with at most this many accounts names them in its reads.
NAMED_KEYS_LIMIT = 200


def named_keys(rows: DataFrame, key: str) -> Optional[Tuple[Any, ...]]:
    """The distinct ``key`` values of ``rows``, sorted, when there are some and at most
    NAMED_KEYS_LIMIT (never an empty list: a MERGE's ON clause with it would match nothing)."""
    found = [r[0] for r in rows.select(key).distinct().limit(NAMED_KEYS_LIMIT + 1).collect()]
    return tuple(sorted(found)) if 0 < len(found) <= NAMED_KEYS_LIMIT else None


def among(keys: Optional[Tuple[Any, ...]], column: str) -> Column:
    """``column IN keys``, or true when the keys are not named: a filter Iceberg prunes files by
    (bucket of latest_summary, key bounds of summary's key-ordered files)."""
    return F.col(column).isin(list(keys)) if keys else F.lit(True)


def among_sql(keys: Optional[Tuple[Any, ...]], column: str) -> str:
    """:func:`among` as SQL, for a MERGE's ON clause (the target's scan is pruned by it)."""
    if not keys:
        return "TRUE"
    return f"{column} IN ({', '.join(str(int(k)) for k in keys)})"  # bigint (PipelineConfig)


def partitions_for(rows: int, config: PipelineConfig) -> int:
    """Shuffle partitions from input volume: the seed's 16-8192 rule, power-of-two steps."""
    rule = config.shuffle_partitions
    wanted = max(1, -(-rows // rule.rows_per_partition))
    power = 1
    while power < wanted:
        power *= 2
    return max(rule.min, min(rule.max, power))


def null_safe_differs(left: str, right: str, columns: List[str]) -> str:
    """SQL predicate: some column differs between aliases ``left`` and ``right`` (NULL-safe)."""
    same = " AND ".join(f"{left}.{c} <=> {right}.{c}" for c in columns)
    return f"NOT ({same})"


def exact_hash(columns: Sequence[Column]) -> Column:
    """A 64-bit hash of ``columns`` that tells apart where NULLs sit: xxhash64 skips a NULL, so
    (7, NULL) and (NULL, 7) hash alike; each column's NULL flag is hashed after the values.
    Rows with equal hashes are taken as equal (odds of 2^-64 for two different rows)."""
    return F.xxhash64(*columns, *[column.isNull() for column in columns])
