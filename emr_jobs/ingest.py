"""Ingest: validate landing batches, then append them to accounts_all exactly once.

All batches of a step are read and validated before anything is written; the append is a
single Iceberg commit whose snapshot summary lists the batch keys, so a batch already
committed (a re-run, a redrive) is recognised and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from datadominion.config import PipelineConfig
from datadominion.job_request import S3_REGION_CONF
from datadominion.landing import FILE_PATH_PATTERN
from datadominion.schema import SOURCE_BATCH_COLUMN, SPARK_SQL_TYPES
from datadominion.steps import StepBatch
from emr_jobs import file_reads
from emr_jobs import transforms as tx
from emr_jobs.footers import footer_problems, s3_options
from emr_jobs.tables import BATCHES_PROPERTY, Tables

EXAMPLES = 5


class BatchValidationError(ValueError):
    """A batch that breaks a rule: names the batch, the rule and example rows."""

    def __init__(self, batch: StepBatch, rule: str, detail: str, examples: Sequence[Any] = ()):
        self.batch, self.rule, self.detail = batch, rule, detail
        self.examples = [str(e) for e in examples]
        lines = [f"batch {batch.batch_key} ({batch.location}) rejected: rule '{rule}': {detail}"]
        lines += [f"  e.g. {e}" for e in self.examples]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ValidatedStep:
    """A step's batches after validation: the valid ones in one persisted scan (with a
    ``_batch`` column), and the rejected ones with the rule each broke."""

    batches: Tuple[StepBatch, ...]
    scan: Optional[DataFrame]  # None when no batch is valid
    rows_per_batch: Dict[str, int]
    rejected: Dict[str, BatchValidationError]

    def rows(self, batch_keys: Optional[Sequence[str]] = None) -> DataFrame:
        """accounts_all rows (source columns and ``source_batch``) of the given valid batches
        (all by default)."""
        assert self.scan is not None, "no valid batch in this step"
        keys = [b.batch_key for b in self.batches] if batch_keys is None else list(batch_keys)
        return (self.scan.where(F.col(BATCH).isin(keys)).drop("_path_month")
                .withColumnRenamed(BATCH, SOURCE_BATCH_COLUMN))


@dataclass(frozen=True)
class IngestResult:
    appended: Tuple[str, ...]
    skipped: Tuple[str, ...]
    rows_appended: int


def read_schema(spark: Any, locations: Sequence[str]) -> T.StructType:
    """The merged schema of every Parquet file under ``locations`` (one Spark job reads the
    footers); raises on unreadable footers, no files or conflicting column types."""
    return spark.read.option("pathGlobFilter", "*.parquet").option("mergeSchema", "true").parquet(
        *locations).schema


def schema_problems(spark: Any, batches: Sequence[StepBatch], config: PipelineConfig
                    ) -> Dict[str, BatchValidationError]:
    """Each batch's schema against the configured one. The batches are read together first: a
    footer job per batch costs more than the check of a small one, and a step of late batches
    has dozens. Only when that read fails or differs is each batch read on its own, to name
    the ones at fault."""
    if len(batches) > 1:
        try:
            if schema_problem(read_schema(spark, [b.location for b in batches]), config) is None:
                return {}
        except Exception:  # some batch is bad: the per-batch reads below name it
            pass
    found = {}
    for batch in batches:
        try:
            problem = schema_problem(read_schema(spark, [batch.location]), config)
        except Exception as exc:  # unreadable footers, no files, conflicting file schemas
            problem = ("readable Parquet", _first_line(exc))
        if problem is not None:
            found[batch.batch_key] = BatchValidationError(batch, *problem)
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


def schema_problem(schema: T.StructType, config: PipelineConfig) -> Optional[Tuple[str, str]]:
    """(rule, detail) for a schema that is not the configured one, else None."""
    expected = config.source_types
    actual: Dict[str, T.DataType] = {f.name: f.dataType for f in schema.fields}
    missing = [c for c in expected if c not in actual]
    if missing:
        return "schema: missing columns", f"columns {missing} are absent"
    extra = [c for c in actual if c not in expected]
    if extra:
        return "schema: extra columns", f"columns {extra} are not in the configured schema"
    wrong = [
        f"{name}: expected {kind}, found {actual[name].simpleString()}"
        for name, kind in expected.items()
        if actual[name].simpleString() != SPARK_SQL_TYPES[kind].lower()
    ]
    return ("schema: column types", "; ".join(wrong)) if wrong else None


def file_column_problems(spark: Any, batches: Sequence[StepBatch], config: PipelineConfig
                         ) -> Dict[str, BatchValidationError]:
    """Every file must carry every column: with mergeSchema a file missing one would read as
    NULLs, silently. The files of all the step's batches are listed on the driver (one LIST
    per folder) and their footers read in parallel on the executors (emr_jobs/footers.py).
    Returns batch key -> its first bad file."""
    owner: Dict[str, StepBatch] = {}
    for batch in batches:
        owner.update({path: batch for path in parquet_files(spark, batch.location)})
    region = spark.conf.get(S3_REGION_CONF, "")
    problems = footer_problems(spark, sorted(owner), sorted(config.source_types), s3_options(region))
    found: Dict[str, BatchValidationError] = {}
    for path, problem in sorted(problems.items()):
        batch = owner[path]
        others = sum(1 for p in problems if owner[p] == batch) - 1
        rule = "readable Parquet" if problem.startswith("unreadable") else "schema: missing columns"
        found.setdefault(batch.batch_key, BatchValidationError(
            batch, rule, f"file {path.rsplit('/', 1)[-1]} {problem}"
            + (f" ({others} more file(s) of this batch with problems)" if others else "")))
    return found


def parquet_files(spark: Any, location: str) -> List[str]:
    """The .parquet files of a batch folder, through Hadoop's FileSystem (EMRFS on EMR)."""
    jvm = spark.sparkContext._jvm
    folder = jvm.org.apache.hadoop.fs.Path(location)
    fs = folder.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return [str(s.getPath().toString()) for s in fs.listStatus(folder) if s.getPath().getName().endswith(".parquet")]


BATCH = "_batch"


def validate_rows(union: DataFrame, batches: Sequence[StepBatch], config: PipelineConfig
                  ) -> Tuple[Dict[str, int], Dict[str, BatchValidationError]]:
    """Row rules for every batch in one pass (``union`` carries a ``_batch`` column); returns
    rows per valid batch and the rejected ones. Examples are fetched only for a failing rule."""
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    rules = {
        "month matches path": F.col(month).isNull() | (F.col(month) != F.col("_path_month")),
        f"non-null {key}": F.col(key).isNull(),
        f"non-null {ts}": F.col(ts).isNull(),
    }
    try:
        counts = {
            row[BATCH]: row
            for row in union.groupBy(BATCH).agg(
                F.count(F.lit(1)).alias("rows"),
                *[F.sum(F.when(cond, 1).otherwise(0)).alias(f"r{i}") for i, cond in enumerate(rules.values())],
            ).collect()
        }
    except Exception as exc:  # corrupt data pages surface only when rows are read
        raise _unreadable(batches, exc) from exc
    rows_per_batch, rejected = {}, {}
    for batch in batches:
        try:
            rows_per_batch[batch.batch_key] = _batch_rows(union, batch, counts.get(batch.batch_key), rules, config)
        except BatchValidationError as exc:
            rejected[batch.batch_key] = exc
    return rows_per_batch, rejected


def _batch_rows(union: DataFrame, batch: StepBatch, found: Any, rules: Dict[str, Any], config: PipelineConfig
                ) -> int:
    """The batch's row count, or BatchValidationError for the first rule it breaks."""
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    rows = int(found["rows"]) if found else 0
    if rows == 0:
        raise BatchValidationError(batch, "non-empty", "the batch holds no rows")
    if rows > config.max_batch_rows:
        raise BatchValidationError(
            batch, "size ceiling", f"{rows} rows exceed max_batch_rows={config.max_batch_rows}; split the batch")
    for i, (rule, cond) in enumerate(rules.items()):
        bad = int(found[f"r{i}"] or 0)
        if bad:
            examples = (union.where((F.col(BATCH) == batch.batch_key) & cond)
                        .select(key, month, ts).limit(EXAMPLES).collect())
            raise BatchValidationError(batch, rule, f"{bad} row(s) break it", [r.asDict() for r in examples])
    return rows


def _unreadable(batches: Sequence[StepBatch], exc: BaseException) -> BatchValidationError:
    text = str(exc)
    culprit = next((b for b in batches if b.location.rstrip("/") in text), batches[0])
    return BatchValidationError(culprit, "readable Parquet", _first_line(exc))


def clashing_groups(df: DataFrame, config: PipelineConfig) -> DataFrame:
    """(key, month, base_ts) groups holding more than one distinct record. Two versions differ
    in their hash (NULLs in their places), so a group's smallest and largest hash tell: a
    fixed-width hash aggregate, where a distinct count plans two aggregations over every record
    (docs/benchmarks.md)."""
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    version = tx.exact_hash([F.col(c.name) for c in config.source_schema])
    return (df.groupBy(key, month, ts).agg(F.min(version).alias("_lo"), F.max(version).alias("_hi"))
            .where(F.col("_lo") != F.col("_hi")).select(key, month, ts))


def conflicting_versions(df: DataFrame, clashing: DataFrame, config: PipelineConfig) -> DataFrame:
    """The ``clashing`` groups of ``df`` with the batches (``sources``) their records came from."""
    group = [config.key_column, config.month_column, config.timestamp_column]
    return df.join(clashing, group, "left_semi").groupBy(*group).agg(F.collect_set(BATCH).alias("sources"))


def conflict_problems(spark: Any, tables: Tables, union: DataFrame, batches: Sequence[StepBatch],
                      config: PipelineConfig) -> Dict[str, BatchValidationError]:
    """Records sharing (key, month, base_ts) must be identical: within a batch, across the
    step's batches, and against records already in accounts_all. Otherwise which one is
    'newest' would be undefined, so every step batch holding such a record is rejected.
    Their sources are gathered only when some group clashes."""
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    months = sorted({b.month for b in batches})
    source_columns = [c.name for c in config.source_schema]
    mine = union.select(*source_columns, BATCH)
    versions = mine
    # A month accounts_all holds no file of (a forward month's, normally) has nothing to clash
    # with: asked of its manifests, not by a join that de-duplicates every record's key first.
    if file_reads.holds_files(spark, tables.accounts_all, (month, months)):
        existing = (
            spark.table(tables.accounts_all).where(F.col(month).isin(months))
            .join(mine.select(key, month, ts).distinct(), [key, month, ts], "left_semi")
            .select(*source_columns, F.lit("accounts_all").alias(BATCH))
        )
        versions = mine.unionByName(existing)
    clashing = clashing_groups(versions, config)
    if clashing.isEmpty():
        return {}
    # Held: read once for the culprits and once per culprit for its examples.
    clashes = conflicting_versions(versions, clashing, config).localCheckpoint(eager=True)
    culprits = sorted(r[0] for r in clashes.select(F.explode("sources")).distinct().collect())
    by_key = {b.batch_key: b for b in batches}
    found = {}
    for culprit in (c for c in culprits if c in by_key):
        examples = clashes.where(F.array_contains("sources", culprit)).limit(EXAMPLES).collect()
        found[culprit] = BatchValidationError(
            by_key[culprit], "no conflicting duplicates",
            f"records share {key}, {month} and {ts} but differ in other columns",
            [{key: r[key], month: r[month], ts: r[ts], "found in": sorted(r["sources"])} for r in examples])
    return found


def committed_batches(spark: Any, tables: Tables) -> Set[str]:
    rows = spark.sql(f"SELECT summary['{BATCHES_PROPERTY}'] AS b FROM {tables.accounts_all}.snapshots").collect()
    return {key for row in rows if row["b"] for key in row["b"].split(",")}


def read_all(spark: Any, batches: Sequence[StepBatch], config: PipelineConfig) -> DataFrame:
    """Every batch of the step in one scan (one plan node, however many batches), with the
    batch key and path month of each row taken from its file's path (:func:`path_parts`)."""
    schema = ", ".join(f"{c.name} {SPARK_SQL_TYPES[c.type]}" for c in config.source_schema)  # DDL
    month, batch_id = path_parts(batches)
    return (
        spark.read.schema(schema).option("pathGlobFilter", "*.parquet").parquet(*[b.location for b in batches])
        .withColumn(BATCH, F.concat_ws("/", month, batch_id))
        .withColumn("_path_month", month)
    )


def path_parts(batches: Sequence[StepBatch]) -> Tuple[Column, Column]:
    """The month and batch id in each row's file path (FILE_PATH_PATTERN's two groups). Every
    file of one batch sits directly in its folder, so a step of one batch (a forward month,
    typically) takes them from the folder once, as literals: parsed per row they cost 1.2-1.5 s
    of a 1M-record month's one-task read (docs/benchmarks.md, twenty-ninth section)."""
    if len(batches) == 1:
        found = re.search(FILE_PATH_PATTERN, f"{batches[0].location.rstrip('/')}/part.parquet")
        if found:
            return F.lit(found.group(1)), F.lit(found.group(2))
    path = F.input_file_name()
    return F.regexp_extract(path, FILE_PATH_PATTERN, 1), F.regexp_extract(path, FILE_PATH_PATTERN, 2)


def validated_batches(
    spark: Any, tables: Tables, batches: Sequence[StepBatch], config: PipelineConfig
) -> ValidatedStep:
    """Check every batch of a step once; a bad batch is set aside with the rule it broke and
    the good ones go on (nothing is written here)."""
    rejected: Dict[str, BatchValidationError] = {}

    def valid(candidates: Sequence[StepBatch]) -> List[StepBatch]:
        return [b for b in candidates if b.batch_key not in rejected]

    rejected.update(schema_problems(spark, batches, config))
    rejected.update(file_column_problems(spark, valid(batches), config))
    if not valid(batches):
        return ValidatedStep((), None, {}, rejected)
    # Checkpointed, not just cached: the file-name column that tags a step of several batches is
    # non-deterministic, and MERGE (copy-on-write) refuses a source whose lineage holds one.
    scan = read_all(spark, valid(batches), config).localCheckpoint(eager=True)
    rows, bad_rows = validate_rows(scan, valid(batches), config)
    rejected.update(bad_rows)
    rejected.update(conflict_problems(spark, tables, scan, valid(batches), config))
    good = tuple(valid(batches))
    return ValidatedStep(good, scan if good else None, {k: rows[k] for k in (b.batch_key for b in good)}, rejected)


def append_new(spark: Any, tables: Tables, step: ValidatedStep) -> IngestResult:
    """Append the batches not yet in accounts_all, in one commit that names them."""
    done = committed_batches(spark, tables)
    new = [b.batch_key for b in step.batches if b.batch_key not in done]
    skipped = tuple(b.batch_key for b in step.batches if b.batch_key in done)
    if not new:
        return IngestResult(appended=(), skipped=skipped, rows_appended=0)
    step.rows(new).writeTo(tables.accounts_all).option(
        f"snapshot-property.{BATCHES_PROPERTY}", ",".join(new)).append()
    return IngestResult(appended=tuple(new), skipped=skipped, rows_appended=sum(step.rows_per_batch[k] for k in new))
