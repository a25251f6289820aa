"""Entrypoint of the summary job: one step = ingest its batches, summarise, check.

On EMR Serverless (spark-submit):
    summary_job.py --config s3://.../pipeline.json --catalog '<json>' --step '<json>'
Locally the launcher calls :func:`run_step` with its own SparkSession.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from pyspark.sql import functions as F

from datadominion.catalog import CatalogSettings
from datadominion.config import PipelineConfig, parse_pipeline_config
from datadominion.steps import Step
from emr_jobs import checks, ingest, publish
from emr_jobs.changes import feed_for
from emr_jobs.maintain import maintain
from emr_jobs.summarise import StageHook, current_snapshot, no_hook, step_settings, summarise
from emr_jobs.tables import Tables, create_tables


@dataclass
class StepReport:
    step_id: str
    mode: str
    months: List[str]
    batches_appended: List[str] = field(default_factory=list)
    batches_skipped: List[str] = field(default_factory=list)
    rows_ingested: int = 0
    changed_records: int = 0
    summary_rows_written: int = 0
    latest_rows_written: int = 0
    accounts_by_class: Dict[str, int] = field(default_factory=dict)
    months_written: List[str] = field(default_factory=list)
    rejected: Dict[str, str] = field(default_factory=dict)  # batch key -> the rule it broke
    seconds: float = 0.0
    stage_seconds: Dict[str, float] = field(default_factory=dict)
    stage_spark_jobs: Dict[str, int] = field(default_factory=dict)  # the profile: Spark jobs per stage
    maintenance: Dict[str, Any] = field(default_factory=dict)  # per table: rewritten, expired, before/after
    changes: Dict[str, Any] = field(default_factory=dict)  # the amended-history feed: table, records, snapshot

    progress: Optional[Callable[[str], None]] = field(default=None, repr=False, compare=False)
    spark: Any = field(default=None, repr=False, compare=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(f"{name} ...")
        context = self.spark.sparkContext if self.spark is not None else None
        group = f"datadominion-{name}-{uuid.uuid4().hex[:8]}"
        if context is not None:
            context.setJobGroup(group, f"{self.mode} {','.join(self.months)}: {name}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.stage_seconds[name] = round(time.monotonic() - started, 3)
            if self.progress:
                self.progress(f"{name} done in {self.stage_seconds[name]:.1f} s")
            if context is not None:
                self.stage_spark_jobs[name] = len(context.statusTracker().getJobIdsForGroup(group))
                context.setLocalProperty("spark.jobGroup.id", None)

    def as_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("progress", "spark")}


def run_step(spark: Any, tables: Tables, step: Step, on_stage: StageHook = no_hook,
             progress: Optional[Callable[[str], None]] = None) -> StepReport:
    """Run one step end to end: validate every batch once (bad ones are set aside with their
    reasons), ingest the good ones, summarise, check. ``on_stage`` hears each point between
    stages (fault-injection tests raise there); ``progress`` hears each stage as it starts."""
    started = time.monotonic()
    report = StepReport(step_id=step.step_id, mode=step.mode, months=list(step.months), progress=progress,
                        spark=spark)
    try:
        with step_settings(spark):
            _run(spark, tables, step, report, on_stage)
    except BaseException:
        # A step that stops midway leaves its persisted DataFrames (and the broadcast relations
        # their plans hold) cached; the job process ends, but a local session goes on to the
        # next step or run, so release them.
        spark.catalog.clearCache()
        raise
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _run(spark: Any, tables: Tables, step: Step, report: StepReport, on_stage: StageHook) -> None:
    if step.mode == "maintain":
        with report.stage("maintain"):
            report.maintenance = maintain(spark, tables, datetime.now(timezone.utc))
    elif step.mode == "rerun":
        months = F.col(tables.config.month_column).isin(list(step.months))
        summarise_and_check(spark, tables, spark.table(tables.accounts_all).where(months), True, report, on_stage)
    else:
        valid = validate_and_ingest(spark, tables, step, report, on_stage)
        if valid.scan is not None:
            summarise_and_check(spark, tables, valid.rows(), False, report, on_stage,
                                sum(valid.rows_per_batch.values()))
            valid.scan.unpersist()


def validate_and_ingest(spark: Any, tables: Tables, step: Step, report: StepReport, on_stage: StageHook
                        ) -> ingest.ValidatedStep:
    with report.stage("validate"):
        valid = ingest.validated_batches(spark, tables, step.batches, tables.config)
    report.rejected = {key: str(exc) for key, exc in sorted(valid.rejected.items())}
    on_stage("after_validate")
    if valid.scan is None:
        return valid
    with report.stage("ingest"):
        result = ingest.append_new(spark, tables, valid)
    report.batches_appended, report.batches_skipped = list(result.appended), list(result.skipped)
    report.rows_ingested = result.rows_appended
    on_stage("after_ingest")
    return valid


def summarise_and_check(spark: Any, tables: Tables, source: Any, force: bool, report: StepReport,
                        on_stage: StageHook, source_rows: Optional[int] = None) -> None:
    """Write both tables (and the step's change records) on the step's audit branches, check
    them there, then publish (write–audit–publish, emr_jobs/publish.py): a failed check leaves
    `main` untouched. ``source_rows``: the validated rows of ``source``, when counted."""
    branch = publish.audit_branch(report.step_id)
    feed = feed_for(report.step_id, report.mode, datetime.now(timezone.utc))
    publish.open_audit(spark, tables, branch, with_changes=feed is not None)
    audited = replace(tables, audit_branch=branch)
    with report.stage("summarise"):
        summary = summarise(spark, audited, source, force=force, on_stage=on_stage, feed=feed,
                            source_rows=source_rows)
    report.changed_records = summary.changed_records
    report.summary_rows_written = summary.summary_rows_written
    report.latest_rows_written = summary.latest_rows_written
    report.accounts_by_class = dict(summary.accounts_by_class)
    report.months_written = list(summary.months_written)
    if feed is not None:
        report.stage_seconds["summarise: change records"] = summary.feed_seconds
    if summary.touched is None:  # nothing to apply
        publish.close_audit(spark, tables, branch)
        return
    on_stage("before_checks")
    with report.stage("checks"):
        try:
            checks.check_touched(spark, audited, summary.touched, summary.named_keys, summary.merged,
                                 new_rows=summary.new_rows_only)
        except checks.IntegrityError:
            publish.close_audit(spark, tables, branch, keep_days=tables.config.failed_audit_retention_days)
            raise
    on_stage("before_publish")
    with report.stage("publish"):
        publish.publish(spark, tables, branch, with_changes=feed is not None,
                        between=lambda: on_stage("between_publishes"))
    if feed is not None:
        by_kind = dict(summary.change_records)
        report.changes = {"table": tables.changes, "records": sum(by_kind.values()), "by_kind": by_kind,
                          "snapshot_id": current_snapshot(spark, tables.changes)}


def _read_text(spark: Any, location: str) -> str:
    if "://" in location and not location.startswith("file://"):
        return str(spark.read.text(location, wholetext=True).first()[0])
    with open(location.removeprefix("file://")) as handle:
        return handle.read()


def write_text(spark: Any, location: str, text: str) -> None:
    """Write a small text object through Hadoop's FileSystem (s3:// on EMR, file:// locally)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def job_result(step: Step, outcome: str, **fields: Any) -> str:
    """What the launcher's Record reads after the job ends: SUCCESS, REJECTED (with the bad
    batches and reasons) or FAILED (with the error)."""
    return json.dumps({"step_id": step.step_id, "state": outcome, **fields}, sort_keys=True, default=str)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="DataDominion summary job: ingest, summarise, check one step")
    parser.add_argument("--config", required=True, help="pipeline config (path or s3:// URI)")
    parser.add_argument("--catalog", required=True, help="catalog settings as JSON")
    parser.add_argument("--step", required=True, help="the step as JSON, or the URI of that JSON")
    parser.add_argument("--latest-buckets", type=int, default=16)
    parser.add_argument("--result-uri", default="", help="where to write the job result JSON")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from datadominion.spark_session import build_spark_session

    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = CatalogSettings.from_args(json.loads(args.catalog))
    spark = build_spark_session(settings, app_name="datadominion-summary")
    # A large step arrives as the URI of its JSON (see datadominion.job_request.needs_step_file).
    step = Step.from_json(args.step if args.step.lstrip().startswith("{") else _read_text(spark, args.step))

    def result(outcome: str, **fields: Any) -> None:
        if args.result_uri:
            write_text(spark, args.result_uri, job_result(step, outcome, **fields))

    try:
        config: PipelineConfig = parse_pipeline_config(json.loads(_read_text(spark, args.config)), args.config)
        tables = Tables(settings.name, config)
        create_tables(spark, tables, args.latest_buckets)
        report = run_step(spark, tables, step)
    except ingest.BatchValidationError as exc:
        result("REJECTED", rejected={exc.batch.batch_key: str(exc)}, detail=str(exc))
        raise
    except Exception as exc:
        result("FAILED", detail=f"{type(exc).__name__}: {exc}"[:4000])
        raise
    # Rejected batches ride on a successful job: the good ones were applied in this same run.
    result("SUCCESS", report=report.as_dict(), rejected=report.rejected)
    print(json.dumps({"datadominion_step_report": report.as_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
