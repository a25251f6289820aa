"""Steps for the engine's tests: built from landed batches, run, and their tables compared with
the independent Python reference (tests/support/reference.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import pyarrow as pa

from datadominion.catalog import CatalogSettings
from datadominion.config import PipelineConfig
from datadominion.schema import arrow_schema
from datadominion.steps import Step, StepBatch
from emr_jobs.publish import refs
from emr_jobs.summarise import current_snapshot
from emr_jobs.summary_job import run_step
from tests.support.batches import record
from tests.support.reference import diff_tables, expected_tables
from tests.support.tables import Isolated, fresh_tables


def step_of(mode: str, batches: Iterable[StepBatch]) -> Step:
    batches = tuple(batches)
    return Step(mode, tuple(sorted({b.month for b in batches})), batches)


def as_step_batches(written: Iterable[Any]) -> List[StepBatch]:
    """The step batches of the generator's written batches (localmode.generator)."""
    return [StepBatch(w.ref.month, w.ref.batch_id, "file://" + str(w.path) + "/") for w in written]


def summarised_by_one_step(spark: Any, catalog_settings: CatalogSettings, pipeline_config: PipelineConfig,
                           landing: Path, land: Callable[[Isolated], Iterable[StepBatch]]) -> Isolated:
    """Fresh tables summarised by one initial step over the batches ``land`` writes: one step a
    module's tests share (each that corrupts them sets them back with ``set_back_after``)."""
    env = fresh_tables(spark, catalog_settings, pipeline_config, landing)
    run_step(spark, env.tables, step_of("initial", land(env)))
    return env


def actual_tables(spark: Any, env: Isolated) -> Tuple[Dict[Any, dict], Dict[Any, dict]]:
    key, month = env.config.key_column, env.config.month_column
    summary = {(r[key], r[month]): r.asDict(recursive=True) for r in spark.table(env.tables.summary).collect()}
    latest = {r[key]: r.asDict(recursive=True) for r in spark.table(env.tables.latest_summary).collect()}
    return summary, latest


def assert_equals_reference(spark: Any, env: Isolated, records: Optional[List[dict]] = None) -> None:
    if records is None:
        records = [r.asDict() for r in spark.table(env.tables.accounts_all).collect()]
    want_summary, want_latest = expected_tables(records, env.config)
    got_summary, got_latest = actual_tables(spark, env)
    assert diff_tables(got_summary, want_summary) == []
    assert diff_tables(got_latest, want_latest) == []


def snapshots(spark: Any, env: Isolated) -> Tuple[Optional[int], ...]:
    return tuple(current_snapshot(spark, t) for t in (env.tables.accounts_all, env.tables.summary,
                                                       env.tables.latest_summary))


def audit_refs(spark: Any, env: Isolated) -> List[Tuple[str, str]]:
    """Every branch and tag of the step's tables but `main`: what a step left behind."""
    return sorted((table.rsplit(".", 1)[1], name)
                  for table in (env.tables.summary, env.tables.latest_summary, env.tables.changes)
                  for name, _ in refs(spark, table, "BRANCH") + refs(spark, table, "TAG") if name != "main")


class Crash(RuntimeError):
    pass


def crash_at(stage: str) -> Callable[[str], None]:
    """A stage hook that kills the step when it reaches ``stage``."""
    def hook(reached: str) -> None:
        if reached == stage:
            raise Crash(stage)
    return hook


def bad_cases(cfg: PipelineConfig) -> List[Tuple[str, List[dict], Any]]:
    """(the rule a batch breaks, its records, the Arrow schema it is written with or None)."""
    good = [record(cfg, 1, "2022-02", 10)]
    schema = arrow_schema(cfg.source_types)
    missing = schema.remove(schema.get_field_index("past_due_am"))
    extra = schema.append(pa.field("surprise", pa.string()))
    wrong = schema.set(schema.get_field_index("past_due_am"), pa.field("past_due_am", pa.string()))
    return [
        ("schema: missing columns", [{k: v for k, v in good[0].items() if k != "past_due_am"}], missing),
        ("schema: extra columns", [dict(good[0], surprise="!")], extra),
        ("schema: column types", [dict(good[0], past_due_am="12")], wrong),
        ("month matches path", [record(cfg, 1, "2022-03", 10)], None),
        ("non-null cons_acct_key", [record(cfg, None, "2022-02", 10)], None),
        ("non-null base_ts", [dict(record(cfg, 1, "2022-02"), base_ts=None)], None),
        ("no conflicting duplicates", [record(cfg, 5, "2022-02", 3, past_due_am=1),
                                       record(cfg, 5, "2022-02", 3, past_due_am=2)], None),
        ("no conflicting duplicates", [record(cfg, 1, "2022-02", 0, past_due_am=12345)], None),  # vs accounts_all
        # neighbouring columns swapping a value and a NULL (a plain hash skips NULLs: equal hashes)
        ("no conflicting duplicates", [record(cfg, 6, "2022-02", 3, past_due_am=7, actual_pymt_am=None),
                                       record(cfg, 6, "2022-02", 3, past_due_am=None, actual_pymt_am=7)], None),
        ("non-empty", [], None),
    ]


def rule_of(reason: str) -> str:
    """The rule a rejection's reason names (``... rule 'name' ...``)."""
    return reason.split("rule '", 1)[1].split("'", 1)[0]
