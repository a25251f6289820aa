"""Bring summary and latest_summary up to date for one step's records (MERGE INTO Iceberg).

Per account (never per month label) the changed records fall in one of three classes:

* single forward - one new month after the account's latest row (or a new account):
  arrays shift from latest_summary; summary's history is never read.
* multi forward  - several new months, all after the latest row: histories are built from
  the new months plus the points encoded in the latest row's arrays.
* backfill       - some new month is not after the latest row: summary rows in
  [M - 35, M + 35] of just these accounts are read; the record replaces or fills month M
  and every row of the account in [M, M + 35] is rebuilt.

Table reads are pinned to the snapshots current when the step starts, so a recomputed
DataFrame can never see this step's own commits.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Tuple

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from datadominion.config import PipelineConfig
from datadominion.months import format_month
from datadominion.schema import SOURCE_BATCH_COLUMN
from datadominion.spark_session import settings_kept
from emr_jobs import changes as feed_records
from emr_jobs import codegen, file_reads
from emr_jobs import transforms as tx
from emr_jobs.tables import Tables, iceberg_table, summary_column_names

MI = tx.MI
LOCAL_PARTITION_CAP = "spark.datadominion.localShufflePartitionCap"
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
ADAPTIVE = "spark.sql.adaptive.enabled"
# What each step sizes for itself.
STEP_SETTINGS = (SHUFFLE_PARTITIONS, ADAPTIVE, codegen.WHOLE_STAGE_CODEGEN, codegen.CODEGEN_FACTORY)
INTERPRET_SMALL_STEPS = "spark.datadominion.interpretSmallSteps"  # "false" keeps generated code
SUMMARY_ROWS_VIEW, LATEST_ROWS_VIEW = "_dd_summary_rows", "_dd_latest_rows"  # the MERGEs' sources
SUMMARY_REPLACED_VIEW = "_dd_summary_replaced"  # per account, the months of the rows a step replaces
REPLACED_MONTHS = "_months"
# A forward step moving at least this share of latest_summary's rows rewrites it whole.
LATEST_REPLACE_SHARE = 0.25


@dataclass(frozen=True)
class SummariseResult:
    changed_records: int
    summary_rows_written: int
    latest_rows_written: int
    accounts_by_class: Tuple[Tuple[str, int], ...]
    months_written: Tuple[str, ...]
    change_records: Tuple[Tuple[str, int], ...] = ()  # the amended-history feed, by kind
    feed_seconds: float = 0.0  # of the summarise stage, spent on change records (the profile)
    # (key, month) of every row written; persisted until the caller releases it
    touched: Optional[DataFrame] = field(default=None, compare=False, repr=False)
    named_keys: Optional[Tuple[Any, ...]] = None  # the accounts the step named in its reads, if few
    merged: bool = False  # summary's rows went among rows the step did not touch (MERGEd, or deleted and appended)

    @property
    def new_rows_only(self) -> bool:
        """Every account the step touched got one row, appended to months that held none of its
        rows (a forward month's step): what the checks' order-free digests assume
        (emr_jobs/checks.py)."""
        return bool(self.summary_rows_written) and not self.merged and {
            name for name, _ in self.accounts_by_class} == {"single_forward"}


def current_snapshot(spark: Any, table: str) -> Optional[int]:
    """The snapshot ``main`` of ``table`` points at (None: the table has none yet)."""
    return main_snapshot(iceberg_table(spark, table))


def main_snapshot(loaded: Any) -> Optional[int]:
    """The snapshot ``main`` of a loaded Iceberg table (:func:`tables.iceberg_table`) points at."""
    head = loaded.refs().get("main")
    return None if head is None else int(head.snapshotId())


def read_pinned(spark: Any, table: str, snapshot: Optional[int]) -> DataFrame:
    reader = spark.read.format("iceberg")
    if snapshot is not None:
        reader = reader.option("snapshot-id", snapshot)
    return reader.load(table)


def read_whole(spark: Any, table: str, pinned: DataFrame, snapshot: Optional[int], open_reads: ExitStack
               ) -> DataFrame:
    """``table`` whole at ``snapshot`` (``pinned`` reads it through Iceberg): its data files read
    by Spark's own Parquet reader when no delete file applies (:func:`file_reads.as_written`;
    open until ``open_reads`` closes). latest_summary's rows decode in about half the time
    (docs/benchmarks.md, eighteenth section); after a forward month rewrote it whole it has no
    delete file."""
    if snapshot is None:  # an empty table
        return pinned
    written = open_reads.enter_context(file_reads.as_written(spark, table, snapshot, pinned.schema))
    return pinned if written is None else written


def prepare_changes(source: DataFrame, config: PipelineConfig) -> DataFrame:
    """Raw accounts_all rows -> one cleaned summary-scalar row per (account, month), with the
    batch it came from (NULL for records ingested before batches were kept)."""
    if SOURCE_BATCH_COLUMN not in source.columns:
        source = source.withColumn(SOURCE_BATCH_COLUMN, F.lit(None).cast("string"))
    scalars = tx.to_summary_scalars(source, config, carry=(SOURCE_BATCH_COLUMN,))
    return tx.with_month_index(tx.newest_per_account_month(scalars, config, SOURCE_BATCH_COLUMN), config)


Stage = Literal["after_validate", "after_ingest", "between_commits", "before_checks", "before_publish",
                "between_publishes"]
StageHook = Callable[[Stage], None]


def no_hook(stage: Stage) -> None:
    """The default stage hook; fault-injection tests pass one that raises at a stage."""


FORWARD_CLASSES = ("single_forward", "multi_forward")
ONE_CHANGE = "_one"  # per classified account, a record of its changes (its only one when _cn = 1)


@dataclass(frozen=True)
class Classified:
    """The step's changed records and, per account, its class against latest_summary."""

    changes: DataFrame  # one cleaned row per (account, month), with its month index
    # key, _class, _cmin, _cmax, _cn, ONE_CHANGE, _lmi, _old_<month> (the latest row's month) and, for the
    # forward classes (every account with ``whole_rows``), _old_<column> of its other columns;
    # with latest_summary's other accounts too (a NULL _class) when classify kept them
    accounts: DataFrame
    by_class: Dict[str, int]
    backfill_months: Optional[Tuple[int, int]]  # month-index range of the backfill accounts' changes
    records: int = 0  # the step's records: one per (account, month) it changes
    whole_rows: bool = True  # every account's whole latest row was read (else the forward classes')
    forward_known: int = 0  # forward-class accounts with a latest row (the others are new)

    def latest_rows(self, config: PipelineConfig, stored: Optional[DataFrame]) -> DataFrame:
        """latest_summary's row of each of the step's accounts that has one, as the step read it:
        the forward classes' from the classification's read (the table's wide rows decoded once,
        not again to move them forward); without ``whole_rows``, the backfill accounts' from
        ``stored``, the summary rows the step read for them (at a step's start latest_summary
        holds each account's newest summary row: emr_jobs/publish.py), so a backfill decodes
        none of latest_summary's arrays. Where ``stored`` lacks the row at the account's latest
        month, the row is its month alone: the step's rows for the account are all older."""
        if self.whole_rows or stored is None:
            return self._as_latest(F.col("_class").isNotNull() & F.col("_lmi").isNotNull(), config)
        key, month = config.key_column, config.month_column
        accounts = self.accounts.where(F.col("_class") == "backfill").select(key, F.col(f"_old_{month}").alias(month))
        # Picked out of the stored rows by a broadcast of the accounts (an outer join would shuffle
        # every stored row to meet them), then given to each account, found or not.
        found = stored.select(*summary_column_names(config)).join(
            tx.broadcast_when_few(accounts, self.by_class["backfill"]), [key, month])
        backfill = accounts.join(found, [key, month], "left")
        if not set(FORWARD_CLASSES) & set(self.by_class):
            return backfill
        forward = self._as_latest(F.col("_class").isin(*FORWARD_CLASSES) & F.col("_lmi").isNotNull(), config)
        return forward.unionByName(backfill)

    def untouched_rows(self, config: PipelineConfig) -> DataFrame:
        """latest_summary's rows of the accounts the step does not touch (kept by classify with
        ``keep_untouched``): what a whole-table rewrite carries over unchanged."""
        return self._as_latest(F.col("_class").isNull(), config)

    def _as_latest(self, which: Any, config: PipelineConfig) -> DataFrame:
        key = config.key_column
        return self.accounts.where(which).select(
            key, *[F.col(f"_old_{c}").alias(c) for c in summary_column_names(config) if c != key])


@dataclass(frozen=True)
class StepReads:
    """Both tables as the step found them (pinned snapshots); when the step names its accounts
    (``keys``, at most NAMED_KEYS_LIMIT of them) only theirs, and the MERGEs' target scans
    are pruned to them too. Once the step is classified, ``latest`` is its accounts' rows
    (:meth:`Classified.latest_rows`)."""

    summary: DataFrame
    latest: DataFrame
    keys: Optional[Tuple[Any, ...]] = None

    @property
    def unnamed(self) -> bool:
        """The step could not name its accounts: its reads are whole month partitions and all of
        latest_summary."""
        return self.keys is None


@dataclass(frozen=True)
class BuiltRows:
    computed: DataFrame  # every summary row the step recomputes
    applied: DataFrame  # the step's records that were applied (stale ones left out)
    accounts: int  # the step's accounts, those of every class
    existing: Optional[DataFrame] = None  # summary rows read for backfill accounts (persisted)
    settled: Optional[DataFrame] = None  # newest existing row of backfill accounts with nothing newer
    forward_keys: Optional[DataFrame] = None  # accounts of the forward classes, None when there are none
    one_row_each: bool = False  # every account has one computed row (single forwards only): its newest
    held: Tuple[DataFrame, ...] = ()  # every frame the rows were built from that the step holds


@dataclass(frozen=True)
class Backfilled:
    """What the backfill accounts need written, and the frames it was worked out from."""

    rows: DataFrame  # their rows to rewrite (before comparing with the existing ones)
    settled: DataFrame  # newest existing row of accounts with nothing newer to apply
    existing: DataFrame  # existing rows, at least at every rewritten (account, month)
    applied: DataFrame  # their records that apply (stale ones left out)
    window: DataFrame  # what was read of the window

    @property
    def held(self) -> Tuple[DataFrame, ...]:
        """The frames it holds: the window read and, when rebuilt from it, the existing rows."""
        return (self.window,) if self.existing is self.window else (self.window, self.existing)


def summarise(spark: Any, tables: Tables, source: DataFrame, force: bool = False,
              on_stage: StageHook = no_hook, feed: Optional[feed_records.FeedStep] = None,
              source_rows: Optional[int] = None) -> SummariseResult:
    """Apply ``source`` (accounts_all-shaped rows) to summary and latest_summary.

    ``force`` recomputes every given (account, month) even when its base_ts is not newer
    than the summarised one (the operator's re-run of a month). With ``feed`` the step also
    appends a change record per written row to the changes table (emr_jobs/changes.py).
    ``source_rows`` (the validated row count, when known) sizes the step before its first
    action: the step's records are at most that many.
    """
    key = tables.config.key_column
    latest_table = iceberg_table(spark, tables.latest_summary)  # its head and row count from one read of its metadata
    summary_at, latest_at = current_snapshot(spark, tables.summary), main_snapshot(latest_table)
    whole_summary = read_pinned(spark, tables.summary, summary_at)
    whole_latest = read_pinned(spark, tables.latest_summary, latest_at)
    changes = prepare_changes(source, tables.config)
    if source_rows is None:  # a re-run of stored months: its records are counted to size it
        changes = changes.persist(StorageLevel.MEMORY_AND_DISK)
        source_rows = changes.count()
    if source_rows == 0:
        changes.unpersist()
        return SummariseResult(0, 0, 0, (), ())
    # Sized before any action on the records. A large step's records are not held: holding 1M of
    # them cost more than de-duplicating them again from the validated scan at each of their
    # (one to three) reads (docs/benchmarks.md, seventeenth section).
    hold = size_step(spark, source_rows, tables.config)
    held_changes = hold.cut(changes)
    # A step of few accounts names them in every read of both tables: Iceberg then opens only
    # the files that can hold them, not whole month partitions.
    keys = tx.named_keys(held_changes, key)
    reads = StepReads(whole_summary.where(tx.among(keys, key)), whole_latest.where(tx.among(keys, key)), keys)
    compile_many_unnamed(spark, hold, reads, source_rows)
    # A step that may rewrite latest_summary whole classifies against all of it and keeps the
    # rows it does not touch, so the rewrite decodes no wide row a second time.
    latest_total = rows_at(latest_table, latest_at)
    may_rewrite = replaces_share(source_rows, latest_total)  # records bound the accounts that move
    # Any other step classifies against latest_summary's key and month, and decodes the wide rows
    # of only its forward-class accounts (their arrays move forward).
    with ExitStack() as open_reads:  # a read of files as written is used up to the step's last write
        if may_rewrite:
            whole = read_whole(spark, tables.latest_summary, whole_latest, latest_at, open_reads)
            classified = first_classified = classify(held_changes, whole, tables.config, hold, keep_untouched=True)
        else:
            first_classified = classify(held_changes, reads.latest.select(key, tables.config.month_column),
                                        tables.config, hold, pick_out=reads_whole_partitions(hold, reads))
            classified = with_forward_rows(first_classified, reads.latest, tables.config, hold, reads.unnamed)
        built = build_rows(spark, tables, classified, reads, force, hold)
        reads = replace(reads, latest=classified.latest_rows(tables.config, built.existing))
        rewrite = latest_rewrite(classified, latest_total, tables.config) if may_rewrite else None
        result = write(spark, tables, built, reads, hold, on_stage, feed, rewrite)
    for df in (changes, first_classified.accounts, classified.accounts, built.computed, *built.held):
        df.unpersist()
    return replace(result, changed_records=first_classified.records, accounts_by_class=tuple(sorted(
        classified.by_class.items())), named_keys=keys)


def size_step(spark: Any, changed_records: int, config: PipelineConfig) -> Holding:
    """Size the step's session settings; returns how the step holds its frames. Shuffle
    partitions follow the seed's 16-8192 rule; local sessions cap it (on two cores, 16 tiny
    tasks per stage cost more than they give). A *small* step (its records fit in one shuffle
    partition) runs
    * without adaptive execution: AQE re-optimises the whole, wide plan after every query
      stage, seconds of driver time per action that a few thousand rows never win back;
    * interpreted, generating no Java: each new plan over the wide summary rows took Janino
      hundreds of milliseconds to compile per stage, more than its rows cost. It is the path
      Spark falls back to whenever generated code fails, and Spark's own tests run both;
      ``spark.datadominion.interpretSmallSteps=false`` keeps generated code; a step that
      cannot name its accounts compiles its scans of whole partitions (emr_jobs/codegen.py),
      and everything when its records are many (:func:`compile_many_unnamed`);
    * cutting the lineage of the frames it holds (:class:`Holding`).
    Measured in docs/benchmarks.md ("Small steps")."""
    cap = int(spark.conf.get(LOCAL_PARTITION_CAP, "0"))
    partitions = tx.partitions_for(changed_records, config)
    partitions = min(partitions, cap) if cap else partitions
    spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
    small_step = changed_records <= config.shuffle_partitions.rows_per_partition
    spark.conf.set(ADAPTIVE, str(not small_step).lower())
    if small_step and spark.conf.get(INTERPRET_SMALL_STEPS, "true") != "false":
        spark.conf.set(codegen.WHOLE_STAGE_CODEGEN, "false")
        spark.conf.set(codegen.CODEGEN_FACTORY, codegen.INTERPRETED)
    return Holding(small_step, partitions)


def reads_whole_partitions(hold: Holding, reads: StepReads) -> bool:
    """A small step that could not name its accounts: its records are few, its reads are not."""
    return hold.small_step and reads.unnamed


# Up to this many records, a small step that cannot name its accounts runs interpreted but for
# its scans of whole partitions; with more it runs generated code throughout. A backfill's record
# rebuilds up to 36 rows: interpreted, a 1% backfill at 250k x 24 (2,500 records) was 15% faster,
# one at 1M x 24 (10,000) as fast, a 10% one at 1M x 24 4% slower (docs/benchmarks.md, twenty-first).
INTERPRETED_UNNAMED_RECORDS = 10_000


def compile_many_unnamed(spark: Any, hold: Holding, reads: StepReads, records: int) -> None:
    """A small step of more accounts than it can name and more than INTERPRETED_UNNAMED_RECORDS
    records runs Spark's generated code throughout, whole-stage too, as Spark does by default:
    interpreted, each of the rows it rebuilds goes through every expression one by one (a 10%
    backfill at 1M accounts x 24 months: 402.2 s compiled throughout, 419.9 s with only its
    scans compiled; docs/benchmarks.md, twenty-first section)."""
    if reads_whole_partitions(hold, reads) and records > INTERPRETED_UNNAMED_RECORDS:
        codegen.compile_all(spark)


@dataclass(frozen=True)
class Holding:
    """How the step keeps the frames it reads more than once. A large step persists them. A
    small step checkpoints them locally, cutting their lineage: every later query (the MERGEs,
    the change records, the checks) is otherwise analysed and matched against the cache through
    the whole step's plan, seconds of driver time per action that a few thousand rows never win
    back (a 19-record backfill's change records: 10.0 s, 3.5 s with their inputs cut). It also
    coalesces them to the step's shuffle partitions: a frame built from file splits and unions
    has dozens of tiny partitions, each a task in every later stage (docs/benchmarks.md)."""

    small_step: bool
    partitions: int  # a small step holds each frame in at most this many partitions

    def keep(self, df: DataFrame) -> DataFrame:
        return self._checkpoint(df) if self.small_step else df.persist(StorageLevel.MEMORY_AND_DISK)

    def cut(self, df: DataFrame) -> DataFrame:
        """A frame read once or twice: a small step cuts its lineage, a large one leaves it."""
        return self._checkpoint(df) if self.small_step else df

    def _checkpoint(self, df: DataFrame) -> DataFrame:
        return df.coalesce(self.partitions).localCheckpoint(eager=True)


@contextmanager
def step_settings(spark: Any) -> Iterator[None]:
    """The session settings a step sizes for itself, as they were before it when it ends."""
    with settings_kept(spark, STEP_SETTINGS):
        yield


def classify(changes: DataFrame, latest: DataFrame, config: PipelineConfig, hold: Holding,
             pick_out: bool = False, keep_untouched: bool = False) -> Classified:
    """Per account: single forward (one month after its latest row, or a new account), multi
    forward (several, all after it) or backfill (some month not after it). ``pick_out``: a small
    step whose ``latest`` is the whole table (it could not name its accounts) semi-joins it to
    its accounts by broadcast. ``keep_untouched``: ``latest`` is the whole table, and its rows
    of accounts without changes are kept too (:meth:`Classified.untouched_rows`)."""
    key, month = config.key_column, config.month_column
    # ONE_CHANGE carries the record of an account with one (a single forward's): building its row
    # then needs no second join of the wide classified rows to the records.
    span = changes.groupBy(key).agg(F.min(MI).alias("_cmin"), F.max(MI).alias("_cmax"), F.count(F.lit(1)).alias("_cn"),
                                    F.first(F.struct(*[c for c in changes.columns if c != key])).alias(ONE_CHANGE))
    if pick_out:  # its accounts' latest rows picked out as the table is scanned, not shuffled whole
        latest = latest.join(F.broadcast(span.select(key)), key, "left_semi")
    forward = F.when(F.col("_cn") == 1, "single_forward").otherwise("multi_forward")
    if keep_untouched:  # hashed, not sorted: a sort-merge join sorted every wide latest row
        span = span.hint("shuffle_hash")
    classes = (
        span.join(latest.select(key, tx.month_index(F.col(month)).alias("_lmi"),
                                *[F.col(c).alias(f"_old_{c}") for c in latest.columns if c != key]),
                  key, "full" if keep_untouched else "left")
        .withColumn("_class", F.when(F.col("_cn").isNull(), F.lit(None).cast("string"))
                    .when(F.col("_lmi").isNull() | (F.col("_cmin") > F.col("_lmi")), forward)
                    .otherwise("backfill"))
    )
    with codegen.whole_partition_scan(latest.sparkSession, pick_out or keep_untouched):  # all of latest_summary
        accounts = hold.keep(classes)
    # One pass gives the class sizes, the step's records and the backfill month range.
    stats = {row["_class"]: row for row in accounts.where(F.col("_class").isNotNull()).groupBy("_class").agg(
        F.count("*").alias("n"), F.min("_cmin").alias("lo"), F.max("_cmax").alias("hi"),
        F.count("_lmi").alias("known"), F.sum("_cn").alias("records")).collect()}
    backfill = stats.get("backfill")
    return Classified(changes, accounts, {name: int(row["n"]) for name, row in stats.items()},
                      (int(backfill["lo"]), int(backfill["hi"])) if backfill else None,
                      records=sum(int(row["records"]) for row in stats.values()),
                      whole_rows=set(summary_column_names(config)) <= set(latest.columns),
                      forward_known=sum(int(row["known"]) for name, row in stats.items() if name in FORWARD_CLASSES))


def with_forward_rows(classified: Classified, latest: DataFrame, config: PipelineConfig,
                      hold: Holding, whole: bool) -> Classified:
    """``classified`` against latest_summary's key and month, its forward-class accounts given
    their whole latest rows (``_old_<column>``, NULL for the others): picked out by their keys as
    the table is scanned (broadcast when they fit); not read at all when they are new accounts.
    ``whole``: ``latest`` is the whole table (the step did not name its accounts)."""
    key, month = config.key_column, config.month_column
    wide = [c for c in summary_column_names(config) if c not in (key, month)]
    if not classified.forward_known:  # new accounts alone: nothing to read
        types = {f.name: f.dataType for f in latest.schema.fields}
        return replace(classified, accounts=classified.accounts.select(
            "*", *[F.lit(None).cast(types[c]).alias(f"_old_{c}") for c in wide]))
    keys = classified.accounts.where(F.col("_class").isin(*FORWARD_CLASSES) & F.col("_lmi").isNotNull()).select(key)
    rows = latest.join(tx.broadcast_when_few(keys, classified.forward_known), key, "left_semi")
    with codegen.whole_partition_scan(latest.sparkSession, whole):
        return replace(classified, accounts=hold.keep(classified.accounts.join(
            rows.select(key, *[F.col(c).alias(f"_old_{c}") for c in wide]), key, "left")))


def build_rows(spark: Any, tables: Tables, classified: Classified, reads: StepReads, force: bool,
               hold: Holding) -> BuiltRows:
    """The summary rows each class of account needs, as one DataFrame. Backfill accounts' existing
    rows are read whole when the step names its accounts (Iceberg then skips every row group
    that cannot hold them, so few arrays are decoded) or re-runs a month, and rebuilt from
    their scalars otherwise (:func:`backfill_rows`)."""
    config, changes, accounts = tables.config, classified.changes, classified.accounts
    key, rolling = config.key_column, config.rolling_columns
    parts: List[DataFrame] = []
    if classified.by_class.get("single_forward"):
        single = accounts.where("_class = 'single_forward'").select(
            key, f"{ONE_CHANGE}.*", "_lmi", *[f"_old_{r.name}" for r in rolling])
        parts.append(tx.shift_forward(single, config))
    if classified.by_class.get("multi_forward"):
        multi_accounts = accounts.where("_class = 'multi_forward'")
        targets = changes.join(multi_accounts.select(key), key, "left_semi")
        points = tx.monthly_points(targets, config).unionByName(tx.points_from_arrays(multi_accounts, config))
        parts.append(tx.histories_from_points(targets, points, config))
    backfilled = None
    applied = changes
    if classified.backfill_months is not None:
        backfill_accounts = accounts.where("_class = 'backfill'")
        backfilled = backfill_rows(reads, changes, backfill_accounts, classified.backfill_months, config,
                                   force, hold, classified.by_class["backfill"])
        parts.append(backfilled.rows)
        applied = changes.join(backfill_accounts.select(key), key, "left_anti").unionByName(backfilled.applied)
    one_row_each = set(classified.by_class) == {"single_forward"}
    computed = _union(parts, summary_column_names(config), spark, tables)
    # Single forwards' rows are the held classification shifted: shifting again per read costs
    # less than holding a second copy of every wide row (docs/benchmarks.md).
    computed = computed if one_row_each else hold.keep(computed)
    forward = {"single_forward", "multi_forward"} & set(classified.by_class)
    forward_keys = accounts.where(F.col("_class").isin(sorted(forward))).select(key) if forward else None
    accounts_count = sum(classified.by_class.values())
    if backfilled is None:
        return BuiltRows(computed, applied, accounts_count, forward_keys=forward_keys, one_row_each=one_row_each)
    return BuiltRows(computed, applied, accounts_count, backfilled.existing, backfilled.settled, forward_keys,
                     one_row_each, backfilled.held)


@dataclass(frozen=True)
class LatestRewrite:
    """latest_summary rewritten whole: the rows of the accounts the step does not touch, as the
    classification read them, and how many accounts move."""

    kept: DataFrame
    moving: int


def rows_at(loaded: Any, snapshot_id: Optional[int]) -> Optional[int]:
    """A loaded Iceberg table's row count at ``snapshot_id`` (from its summary), None when unknown."""
    if snapshot_id is None:
        return None
    snapshot = loaded.snapshot(snapshot_id)
    total = None if snapshot is None else snapshot.summary().get("total-records")
    return None if total is None else int(total)


def latest_rewrite(classified: Classified, latest_total: Optional[int],
                   config: PipelineConfig) -> Optional[LatestRewrite]:
    """Whether the step rewrites latest_summary whole instead of MERGEing into it. It does when
    every account it touches moves forward (no backfill) and they are at least
    LATEST_REPLACE_SHARE of the table's rows: a MERGE would cost the same read and join, and
    leave delete files over most of the table for every later read until compaction
    (docs/decisions.md). ``classified`` must have kept the untouched rows."""
    by_class = classified.by_class
    moving = by_class.get("single_forward", 0) + by_class.get("multi_forward", 0)
    if "backfill" in by_class or not moving:
        return None
    if not replaces_share(moving, latest_total):
        return None
    return LatestRewrite(classified.untouched_rows(config), moving)


def replaces_share(rows: int, latest_total: Optional[int]) -> bool:
    """``rows`` are at least LATEST_REPLACE_SHARE of latest_summary's rows (any share of a table
    whose row count is unknown)."""
    return latest_total is None or rows >= LATEST_REPLACE_SHARE * latest_total


def write(spark: Any, tables: Tables, built: BuiltRows, reads: StepReads, hold: Holding, on_stage: StageHook,
          feed: Optional[feed_records.FeedStep] = None, rewrite: Optional[LatestRewrite] = None) -> SummariseResult:
    """MERGE the rows that differ into summary (with their change records when the step keeps
    the feed), then move latest_summary forward: rewritten whole with a ``rewrite``, else
    MERGEd against the step's ``reads``."""
    config = tables.config
    written, compared = rows_to_write(spark, tables, built, reads, hold, keep_stored=feed is not None)
    per_month = written.groupBy(config.month_column).count().collect()
    months_written = tuple(sorted(r[0] for r in per_month))
    summary_rows = sum(int(r[1]) for r in per_month)
    by_kind: Dict[str, int] = {}
    feed_seconds = 0.0
    merged = False
    if summary_rows:
        merged = write_summary(spark, tables, written, months_written, reads, built.existing is not None,
                               summary_rows)
        if feed is not None and compared is not None:  # compared: kept for the feed
            feed_started = time.monotonic()
            by_kind = append_change_records(tables, compared, hold.cut(built.applied), feed, built.accounts)
            feed_seconds = round(time.monotonic() - feed_started, 3)
    on_stage("between_commits")
    # latest_summary: the newest written row per account, plus (repair after an interrupted
    # run) the newest existing row of accounts whose records were all already summarised.
    # The MERGE only moves forward or corrects the same month.
    # Single forwards only (a forward month): one row per account, already its newest; no window.
    if built.one_row_each:
        newest = built.computed
    else:
        candidates = built.computed if built.settled is None else built.computed.unionByName(built.settled)
        newest = tx.newest_per_account(candidates, config)
    if rewrite is not None:
        replace_latest_rows(tables, newest, rewrite.kept)
        latest_rows = rewrite.moving
    else:
        latest_rows = merge_latest(spark, tables, newest, reads.latest, hold, reads.keys)
    touched = built.computed.select(config.key_column, config.month_column).localCheckpoint(eager=True)
    (written if compared is None else compared).unpersist()
    return SummariseResult(0, summary_rows, latest_rows, (), months_written, tuple(sorted(by_kind.items())),
                           feed_seconds, touched, merged=merged)


def rows_to_write(spark: Any, tables: Tables, built: BuiltRows, reads: StepReads, hold: Holding,
                  keep_stored: bool) -> Tuple[DataFrame, Optional[DataFrame]]:
    """The computed rows that differ from what summary holds (a re-run writes nothing), held.
    With ``keep_stored`` (the feed) also those rows each beside the version it replaces, the
    frame they are drawn from: the change records then need no second wide join."""
    if not keep_stored:
        if built.existing is None:  # nothing to compare: the computed rows, already held
            return built.computed, None
        return hold.keep(only_changed(built.computed, built.existing, tables.config)), None
    stored = previous_rows(spark, tables, built, reads.summary)
    compared = hold.keep(against_stored(built.computed, stored, tables.config))
    return compared.drop(feed_records.STORED), compared


def previous_rows(spark: Any, tables: Tables, built: BuiltRows, summary: DataFrame) -> DataFrame:
    """Summary rows as the step found them at every (account, month) it computed: backfill
    accounts' from the window the step already read; forward-class accounts' (normally none:
    their months are new, unless a run died between its publishes) read from their months."""
    key, month = tables.config.key_column, tables.config.month_column
    parts = [built.existing] if built.existing is not None else []
    if built.forward_keys is not None:
        pairs = built.computed.select(key, month).join(built.forward_keys, key, "left_semi")
        months = sorted(r[0] for r in pairs.select(month).distinct().collect())
        parts.append(summary.where(F.col(month).isin(months)).join(pairs, [key, month], "left_semi"))
    return _union(parts, summary_column_names(tables.config), spark, tables)


def append_change_records(tables: Tables, compared: DataFrame, applied: DataFrame,
                          feed: feed_records.FeedStep, accounts: int) -> Dict[str, int]:
    records = feed_records.change_records(compared, applied, feed, tables.config, accounts).persist(
        StorageLevel.MEMORY_AND_DISK)
    by_kind = feed_records.counts_by_kind(records)
    if by_kind:
        records.writeTo(tables.written(tables.changes)).append()
    records.unpersist()
    return by_kind


def _union(parts: List[DataFrame], columns: List[str], spark: Any, tables: Tables) -> DataFrame:
    if not parts:
        return spark.table(tables.summary).select(*columns).limit(0)
    out = parts[0].select(*columns)
    for part in parts[1:]:
        out = out.unionByName(part.select(*columns))
    return out


def only_changed(rows: DataFrame, existing: DataFrame, config: PipelineConfig) -> DataFrame:
    """Rows absent from ``existing`` or different from their existing version."""
    return against_stored(rows, existing, config).drop(feed_records.STORED)


def against_stored(rows: DataFrame, stored: DataFrame, config: PipelineConfig) -> DataFrame:
    """:func:`only_changed`, each row with its ``stored`` version as a struct column
    (feed_records.STORED; NULL where none is stored)."""
    key, month = config.key_column, config.month_column
    columns = summary_column_names(config)
    found = F.col(f"t.{config.timestamp_column}").isNotNull()
    return (rows.alias("s").join(stored.select(*columns).alias("t"), [key, month], "left")
            .where(~found | F.expr(tx.null_safe_differs("s", "t", [c for c in columns if c not in (key, month)])))
            .select(*[F.col(f"s.{c}") if c not in (key, month) else F.col(c) for c in columns],
                    F.when(found, F.struct(*[F.col(f"t.{c}").alias(c) for c in columns])).alias(feed_records.STORED)))


def backfill_rows(
    reads: StepReads, changes: DataFrame, accounts: DataFrame, month_range: Tuple[int, int],
    config: PipelineConfig, force: bool, hold: Holding, account_count: int,
) -> Backfilled:
    """What backfill ``accounts`` (``account_count`` of them) need written (:class:`Backfilled`),
    from the window of their months in the step's read of summary.

    A step that names its accounts or re-runs a month (``force``) reads the stored rows whole
    (``whole_rows``). Any other reads only the window's scalar columns: Iceberg reads a
    projection of primitive columns vectorized, while it decodes every history array value by
    value, and the arrays hold 36 times the scalars' values. The existing rows' arrays are
    then rebuilt from those scalars (a row's history is a function of its account's records:
    docs/architecture.md, "Table semantics"), so only rows a record actually moves are
    written. With ``whole_rows`` the stored rows are compared against: the operator's re-run
    rewrites any stored row that differs from its recomputation."""
    h, key, month, ts = config.history_length, config.key_column, config.month_column, config.timestamp_column
    scalars = list(config.summary_scalar_types)
    whole_rows = force or not reads.unnamed
    lo, hi = format_month(month_range[0] - (h - 1)), format_month(month_range[1] + (h - 1))
    # Broadcast when few: what adaptive execution would make of it at run time (small steps run without).
    keys = tx.broadcast_when_few(accounts.select(key), account_count)
    # Partition predicate on the month range; the semi-join keeps only these accounts.
    # Read once, used several times (and again for the change records).
    window = reads.summary.where(F.col(month).between(lo, hi))
    with codegen.whole_partition_scan(window.sparkSession, reads.unnamed):
        window = hold.keep(tx.with_month_index(
            (window if whole_rows else window.select(*scalars)).join(keys, key, "left_semi"), config))
    mine = changes.join(keys, key, "left_semi")
    if not force:
        current = window.select(key, month, F.col(ts).alias("_ets"))
        mine = mine.join(current, [key, month], "left").where(
            F.col("_ets").isNull() | (F.col(ts) > F.col("_ets"))).drop("_ets")
    kept_months = mine.groupBy(key).agg(F.collect_list(MI).alias("_km"))
    points_full = (
        window.select(*scalars, MI).join(mine.select(key, month), [key, month], "left_anti")
        .unionByName(mine.select(*scalars, MI))
        .join(kept_months, key)  # only accounts with something to apply
    )
    targets = points_full.where(tx.touched_by("_km", config)).drop("_km")
    rows = tx.histories_from_points(targets, tx.monthly_points(points_full, config), config)
    settled = tx.newest_per_account(window.join(kept_months.select(key), key, "left_anti"), config)
    if whole_rows:
        return Backfilled(rows, settled.select(*summary_column_names(config)), window, mine, window)
    # The existing rows the step compares against or repairs latest_summary from, rebuilt
    # from the window's scalars: the old version of every target row, and the settled rows.
    old_targets = window.join(kept_months, key).where(tx.touched_by("_km", config)).drop("_km")
    existing = hold.keep(tx.histories_from_points(old_targets.unionByName(settled), tx.monthly_points(window, config),
                                                  config))
    return Backfilled(rows, existing.join(kept_months.select(key), key, "left_anti"), existing, mine, window)


def write_summary(spark: Any, tables: Tables, rows: DataFrame, months: Tuple[str, ...], reads: StepReads,
                  read_existing: bool, row_count: int) -> bool:
    """Months the table read by the step holds no row of (a forward or initial step's new
    months; with named keys, no row of these accounts) are appended: nothing to match, so no
    MERGE join. Anything else replaces the rows it matches (which also covers a forward month
    published by a run that died before latest_summary): MERGEd when the step names its
    accounts, else deleted and appended (:func:`replace_summary_rows`; ``row_count``: how many
    rows). A step that ``read_existing`` rows to rebuild (a backfill)
    replaces without asking: its rows nearly always exist, and asking scans every month it
    writes. True when the rows went among rows the step did not touch."""
    month = tables.config.month_column
    if not read_existing and reads.summary.where(F.col(month).isin(list(months))).limit(1).count() == 0:
        rows.writeTo(tables.written(tables.summary)).append()
        return False
    if reads.unnamed:
        replace_summary_rows(spark, tables, rows, months, row_count)
    else:
        merge_summary(spark, tables, rows, months, reads.keys)
    return True


def replace_summary_rows(spark: Any, tables: Tables, rows: DataFrame, months: Tuple[str, ...],
                         row_count: int) -> None:
    """Delete the stored rows at ``rows``' (key, month) pairs, then append ``rows``: what the
    MERGE would leave, in two commits on the step's branch (readers of ``main`` see both or neither:
    emr_jobs/publish.py). A MERGE that inserts must keep every source row, so Spark cannot
    broadcast its source and shuffles the key and month of every stored row of the months it
    writes (a 1% backfill's window: all of them). The delete's source is narrow, one row per
    account with the months it replaces, broadcast when few (at most ``row_count`` accounts):
    the stored rows are only scanned, never shuffled."""
    per_account = replaced_months(rows, tables.config)
    tx.broadcast_when_few(per_account, row_count).createOrReplaceTempView(SUMMARY_REPLACED_VIEW)
    with codegen.whole_partition_scan(spark):  # scans the key and month of every row of ``months``
        spark.sql(summary_delete_sql(tables, months))
    rows.writeTo(tables.written(tables.summary)).append()


def replaced_months(rows: DataFrame, config: PipelineConfig) -> DataFrame:
    """Per account of ``rows``: its key and the months of its rows (REPLACED_MONTHS)."""
    return rows.groupBy(config.key_column).agg(F.collect_list(config.month_column).alias(REPLACED_MONTHS))


def summary_delete_sql(tables: Tables, months: Tuple[str, ...]) -> str:
    """Delete summary's rows at the months each account of SUMMARY_REPLACED_VIEW replaces (its target
    scan reads key and month). Matched on the key alone, the month looked up in the account's
    list: Spark's hash join on one integral key is its fastest, while a key and month hashed the
    month text of every stored row scanned."""
    month = tables.config.month_column
    return _summary_merge(tables, SUMMARY_REPLACED_VIEW, months, None, "WHEN MATCHED THEN DELETE",
                          f"array_contains(s.{REPLACED_MONTHS}, t.{month})")


def merge_summary(spark: Any, tables: Tables, rows: DataFrame, months: Tuple[str, ...],
                  keys: Optional[Tuple[Any, ...]] = None) -> None:
    """``rows`` differ from the rows they replace (:func:`only_changed`; a forward month's are
    new), so a match updates unconditionally: the MERGE's scan of the target then reads only
    the key and month, never the history arrays (a condition comparing rows read them all)."""
    rows.createOrReplaceTempView(SUMMARY_ROWS_VIEW)
    spark.sql(summary_merge_sql(tables, months, keys))


def summary_merge_sql(tables: Tables, months: Tuple[str, ...], keys: Optional[Tuple[Any, ...]] = None) -> str:
    """The summary MERGE of rows in SUMMARY_ROWS_VIEW (its target scan reads key and month)."""
    return _summary_merge(tables, SUMMARY_ROWS_VIEW, months, keys,
                          "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")


def _summary_merge(tables: Tables, source: str, months: Tuple[str, ...], keys: Optional[Tuple[Any, ...]],
                   actions: str, same_month: Optional[str] = None) -> str:
    """A MERGE into summary of ``source`` on key and month (``same_month``: how a target row's
    month meets the source row; equal months by default), its target pruned to ``months`` (and
    ``keys``, when named)."""
    key, month = tables.config.key_column, tables.config.month_column
    month_list = ", ".join(f"'{m}'" for m in months)
    return f"""
        MERGE INTO {tables.written(tables.summary)} t
        USING {source} s
        ON t.{key} = s.{key} AND {same_month or f"t.{month} = s.{month}"} AND t.{month} IN ({month_list})
           AND {tx.among_sql(keys, f"t.{key}")}
        {actions}
    """


def replace_latest_rows(tables: Tables, rows: DataFrame, kept: DataFrame) -> None:
    """Rewrite latest_summary as ``kept`` (its rows of accounts the step did not touch) plus
    ``rows`` (each a move forward: the step has no backfill account); no delete files.
    Overwriting by an always-true filter replaces every file, whatever partition spec wrote it."""
    columns = summary_column_names(tables.config)
    kept.select(*columns).unionByName(rows.select(*columns)).writeTo(
        tables.written(tables.latest_summary)).overwrite(F.lit(True))


def merge_latest(spark: Any, tables: Tables, rows: DataFrame, latest: DataFrame, hold: Holding,
                 keys: Optional[Tuple[Any, ...]] = None) -> int:
    """Move each account's latest row forward (or correct it in place); a no-op commits nothing.
    The rows are chosen against the step's read of the table (which the audit branch still
    holds), so the MERGE only guards the direction: its scan reads the key and month, not the
    arrays."""
    config = tables.config
    key, month = config.key_column, config.month_column
    columns = summary_column_names(config)
    moves = F.expr(f"s.{month} > t.{month} OR (s.{month} = t.{month} AND "
                   f"{tx.null_safe_differs('s', 't', [c for c in columns if c not in (key, month)])})")
    changes = hold.keep(
        rows.select(*columns).alias("s").join(latest.select(*columns).alias("t"), key, "left")
        .where(F.col(f"t.{month}").isNull() | moves)
        .select(*[F.col(c) if c == key else F.col(f"s.{c}") for c in columns])
    )
    count = changes.count()
    if count:
        changes.createOrReplaceTempView(LATEST_ROWS_VIEW)
        with codegen.whole_partition_scan(spark, keys is None):  # without keys it scans all of the table
            spark.sql(latest_merge_sql(tables, keys))
    changes.unpersist()
    return count


def latest_merge_sql(tables: Tables, keys: Optional[Tuple[Any, ...]] = None) -> str:
    """The latest_summary MERGE of rows in LATEST_ROWS_VIEW (its target scan reads key and month)."""
    key, month = tables.config.key_column, tables.config.month_column
    return f"""
        MERGE INTO {tables.written(tables.latest_summary)} t
        USING {LATEST_ROWS_VIEW} s
        ON t.{key} = s.{key} AND {tx.among_sql(keys, f"t.{key}")}
        WHEN MATCHED AND s.{month} >= t.{month} THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *
    """
