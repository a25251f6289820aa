"""`make bench`: the engine's benchmarks (figures, not pass/fail tests).

    python -m tests.benchmarks.run [--large] [--only NAME]

Each scenario runs in a fresh process so Spark start-up is counted where it should be.
Peak driver memory is the JVM's VmHWM (reset before each measured phase).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tests.support.cli import cli_env, run_cli, start_cli
from tests.support.jvm import forget_static_lookups, java_list, py4j_requests, scala_list, spark_stages
from tests.support.paths import REPO


def _jvm_pid(spark: Any) -> int:
    return int(spark._jvm.java.lang.ProcessHandle.current().pid())


def _reset_peak(pid: int) -> None:
    """Reset the JVM's peak-RSS mark (Linux clear_refs 5); unsupported kernels keep the old mark."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak_mb(pid: int) -> Optional[int]:
    """The JVM's peak resident memory in MB; None once it is gone (killed for memory, say), so
    a scenario still reports what it measured (a 1M x 24 scale point lost 30 minutes of
    figures to ``round(nan)`` when the kernel killed its driver at the end)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return None


def _env(home: Path, spark_conf: Optional[Dict[str, str]] = None) -> Any:
    """A local home; ``spark_conf``: settings its Spark session adds to the local ones."""
    from datadominion.config import load_pipeline_config
    from localmode.environment import LocalEnvironment

    return LocalEnvironment(home, load_pipeline_config(REPO / "configs" / "pipeline.json"), spark_conf)


def _process(env: Any) -> Dict[str, Any]:

    result = env.process(notify=lambda _: None)
    assert result.ok, (result.rejected, result.failed)
    return result.steps[-1]["report"] if result.steps else {}


def scenario_seed_case_2(home: Path) -> Dict[str, Any]:
    """The seed's Test Case 2 end to end, Spark start included (seed: ~15 min + ~3 min)."""
    from localmode.generator import generate, write_corrections

    started = time.monotonic()
    env = _env(home)
    generate(env.config, env.landing, 100, 60, "2020-01", 10, 42)
    initial = _process(env)
    t_initial = time.monotonic() - started
    pid = _jvm_pid(env.runner.session())
    write_corrections(env.config, env.landing, [1, 2, 3], ["2021-03", "2022-06", "2023-09"], 20_000, 60,
                      datetime(2025, 2, 1, tzinfo=timezone.utc))
    t0 = time.monotonic()
    backfill = _process(env)
    return {"total_s": round(time.monotonic() - started, 1), "initial_incl_start_s": round(t_initial, 1),
            "backfill_s": round(time.monotonic() - t0, 1), "initial_stages": initial.get("stage_seconds"),
            "backfill_stages": backfill.get("stage_seconds"), "driver_peak_mb": _peak_mb(pid)}


def _late_set(env: Any) -> int:
    """About 35 late records in 26 batches over ~25 months of the seed's Test Case 2 data:
    corrections, stale records, gap fills, a new account backfilled into three past months, a
    double correction in one batch, and one forward month. Returns the number of batches."""
    import pyarrow as pa

    from datadominion.landing import BatchRef
    from datadominion.schema import arrow_schema
    from localmode.generator import _write_batch, generate, write_corrections

    newer, older = datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2019, 1, 1, tzinfo=timezone.utc)
    batches = 0
    for number, month in enumerate(["2020-05", "2020-11", "2021-03", "2021-08", "2022-01", "2022-06", "2022-10",
                                    "2023-02", "2023-07", "2023-11", "2024-03", "2024-08"]):
        batches += len(write_corrections(env.config, env.landing, [3 + number, 40 + number], [month], 500, 30,
                                         newer + timedelta(minutes=number), batch_label="corr"))
    for number, month in enumerate(["2020-09", "2021-12", "2023-04", "2024-06"]):  # stale: older base_ts
        batches += len(write_corrections(env.config, env.landing, [60 + number], [month], 9_999, 90,
                                         older + timedelta(minutes=number), batch_label="stale"))
    for number, month in enumerate(["2020-07", "2021-05", "2022-09", "2023-09", "2024-10"]):  # fills gaps or corrects
        batches += len(write_corrections(env.config, env.landing, [80 + number, 90 + number], [month], 100, 0,
                                         newer + timedelta(hours=1, minutes=number), batch_label="fill"))
    schema = arrow_schema(env.config.source_types)
    template = _landed(env, "2021-06").slice(0, 1).to_pylist()[0]
    for month in ("2021-06", "2021-07", "2021-09"):  # a new account, backfilled into three past months
        row = dict(template, cons_acct_key=100_001, rpt_as_of_mo=month, base_ts=newer)
        _write_batch(env.landing, BatchRef(month, f"newacct-{month}"), pa.Table.from_pylist([row], schema=schema))
        batches += 1
    twice = dict(_landed(env, "2022-03").slice(0, 1).to_pylist()[0])
    rows = [dict(twice, past_due_am=1, base_ts=newer), dict(twice, past_due_am=2, base_ts=newer + timedelta(1))]
    _write_batch(env.landing, BatchRef("2022-03", "double-correction"), pa.Table.from_pylist(rows, schema=schema))
    batches += 1
    batches += len(generate(env.config, env.landing, 100, 1, "2025-01", 10, 43, batch_prefix="next"))
    return batches


def _landed(env: Any, month: str) -> Any:
    """The records of ``month`` in the landing folder (the story landed them before)."""
    from localmode.generator import read_landing_month

    table = read_landing_month(env.landing, month)
    assert table is not None, f"nothing landed for {month}"
    return table


# Late batches of a single record measured after the late set, each a backfill step of its own:
# the target (<= 5 s) is judged on their median, since one step's time moves by a second or more
# between sittings on two cores (docs/benchmarks.md, twenty-sixth section).
ONE_RECORD_ACCOUNTS = (50, 52, 53)


def scenario_late_set(home: Path) -> Dict[str, Any]:
    """The seed's Test Case 2 (100 accounts x 60 months), then the late set above: the time to
    apply it (Spark start excluded), each step's stages, seconds and Spark jobs; then late
    batches of a single record (ONE_RECORD_ACCOUNTS), each a backfill step of its own, the
    first with its Spark jobs and files scanned; then one more after a maintenance step."""
    from localmode.generator import generate

    env = _env(home, {_ScanMeter.RETAINED: "1000"})  # a step's SQL executions outnumber the local 20
    generate(env.config, env.landing, 100, 60, "2020-01", 10, 42)
    _process(env)
    batches = _late_set(env)
    t0 = time.monotonic()
    result = env.process(notify=lambda _: None)
    assert result.ok, (result.rejected, result.failed)
    applied_s = round(time.monotonic() - t0, 1)
    ones = [_one_record_step(env, account, f"one{n}") for n, account in enumerate(ONE_RECORD_ACCOUNTS)]
    steps_s = [one["one_record_s"] for one in ones]
    maintained = env.process(notify=lambda _: None, maintain=True)
    assert maintained.ok, (maintained.rejected, maintained.failed)
    return {"late_batches": batches, "applied_s": applied_s, "steps": [_step_profile(s) for s in result.steps],
            **ones[0], "one_record_s": statistics.median(steps_s), "one_record_steps_s": steps_s,
            "after_maintenance": _one_record_step(env, 51, "two")}


def _one_record_step(env: Any, account: int, label: str) -> Dict[str, Any]:
    """A late batch of one record for ``account`` in 2022-07, a backfill step of its own
    (target <= 5 s), with its Spark jobs and the Iceberg files its scans kept. Measured again
    after a maintenance step: the part of its cost that is earlier steps' delete files
    (docs/benchmarks.md, twelfth section)."""
    from localmode.generator import write_corrections

    write_corrections(env.config, env.landing, [account], ["2022-07"], 1_234, 0,
                      datetime(2026, 2, 1, tzinfo=timezone.utc), batch_label=label)
    jobs, scans = _JobMeter(env.runner.session()), _ScanMeter(env.runner.session())
    t0 = time.monotonic()
    one = env.process(notify=lambda _: None)
    seconds = time.monotonic() - t0
    assert one.ok and [s["mode"] for s in one.steps] == ["backfill"], (one.rejected, one.failed)
    return {"one_record_s": round(seconds, 1), "one_record_step": _step_profile(one.steps[0]),
            "one_record_jobs": jobs.read(seconds), "one_record_files": scans.read()}


def _step_profile(step: Dict[str, Any]) -> Dict[str, Any]:
    report = step["report"]
    return {"mode": step["mode"], "months": len(step["months"]), "seconds": report.get("seconds"),
            "records": report.get("changed_records"), "stages": report.get("stage_seconds"),
            "spark_jobs": report.get("stage_spark_jobs")}


def scenario_one_record(home: Path, accounts: int) -> Dict[str, Any]:
    """A one-record correction of a past month in a table of ``accounts`` accounts x 2 months,
    twice (the second step runs warm): what a late batch of a single record costs as the
    tables grow. The step names its one account in every read, so Iceberg opens only the
    files whose key bounds or bucket can hold it."""
    from localmode.generator import generate, write_corrections

    env = _env(home)
    generate(env.config, env.landing, accounts, 2, "2024-01", 0, 3)
    _process(env)
    steps = []
    for number in range(2):
        write_corrections(env.config, env.landing, [accounts // 2 + number], ["2024-01"], 7, 1,
                          datetime(2026, 1, 1 + number, tzinfo=timezone.utc), batch_label=f"one{number}")
        t0 = time.monotonic()
        report = _process(env)
        steps.append({"seconds": round(time.monotonic() - t0, 1), "stages": report.get("stage_seconds"),
                      "spark_jobs": report.get("stage_spark_jobs")})
    return {"accounts": accounts, "steps": steps}


def _load_then_forward(home: Path, accounts: int, history_months: int) -> Dict[str, Any]:
    from localmode.generator import generate

    env = _env(home)
    generate(env.config, env.landing, accounts, history_months, "2020-01", 0, 7)
    _process(env)
    pid = _jvm_pid(env.runner.session())
    latest_before = env.catalog.load_table(env.identifier(env.config.latest_history_table)).scan().to_arrow()
    generate(env.config, env.landing, accounts, history_months + 1, "2020-01", 0, 7)  # rewrites + one new month
    _reset_peak(pid)
    t0 = time.monotonic()
    report = _process(env)
    seconds = time.monotonic() - t0
    reference = _duckdb_reference(env, home, report["months"][-1], latest_before)
    return {"accounts": accounts, "history_months": history_months, "forward_s": round(seconds, 1),
            "records_per_s": round(accounts / seconds), "stages": report.get("stage_seconds"),
            "driver_peak_mb": _peak_mb(pid), **reference,
            "ratio_engine_over_duckdb_forward": round(seconds / reference["duckdb_forward_s"], 1)}


def _duckdb_reference(env: Any, home: Path, month: str, latest_before: Any, recompute: bool = True
                      ) -> Dict[str, Any]:
    """The same forward month on one node (DuckDB, 2 threads): read the previous latest rows
    and the new month's batch files, build the arrays, write the month's summary rows and the
    new latest_summary as Parquet; then (``recompute``) the full from-scratch recompute of
    every month."""
    import pyarrow.parquet as pq

    from tests.support import duckdb_reference as ddb

    out = home / "duckdb"
    out.mkdir()
    pq.write_table(latest_before, out / "latest_before.parquet")
    accounts_all = env.catalog.load_table(env.identifier(env.config.source_table)).scan().to_arrow()
    pq.write_table(accounts_all, out / "accounts_all.parquet")
    key, parquet = env.config.key_column, "(FORMAT parquet, COMPRESSION zstd)"
    new = f"read_parquet('{env.landing}/accounts_all/rpt_as_of_mo={month}/*/*.parquet')"
    before = f"read_parquet('{out}/latest_before.parquet')"
    db = ddb.connect()
    t0 = time.monotonic()
    db.execute("CREATE TEMP TABLE fwd AS " + ddb.forward_sql(env.config, new, before))
    db.execute(f"COPY fwd TO '{out}/summary_{month}.parquet' {parquet}")
    db.execute(f"COPY (SELECT * FROM fwd UNION ALL SELECT * FROM {before} WHERE {key} NOT IN (SELECT {key} FROM fwd)) "
               f"TO '{out}/latest.parquet' {parquet}")
    forward = time.monotonic() - t0
    records = db.execute("SELECT count(*) FROM fwd").fetchone()[0]
    if not recompute:
        return {"duckdb_forward_s": round(forward, 2), "duckdb_records_per_s": round(records / forward)}
    recompute_sql = ddb.recompute_sql(env.config, f"read_parquet('{out}/accounts_all.parquet')")
    t0 = time.monotonic()
    db.execute(f"COPY ({recompute_sql}) TO '{out}/summary_recomputed.parquet' {parquet}")
    recompute_s = time.monotonic() - t0
    return {"duckdb_forward_s": round(forward, 2), "duckdb_records_per_s": round(records / forward),
            "duckdb_recompute_all_months_s": round(recompute_s, 2)}


def scenario_forward(home: Path, accounts: int) -> Dict[str, Any]:
    return _load_then_forward(home, accounts, 1)


def scenario_history_ratio(home: Path, accounts: int) -> Dict[str, Any]:
    # Each side in its own process: one process has one SparkSession, wired to one catalog.
    short = _child("forward_h6", accounts)
    long = _child("forward_h60", accounts)
    return {"forward_6_months_s": short["forward_s"], "forward_60_months_s": long["forward_s"],
            "ratio_60_over_6": round(long["forward_s"] / short["forward_s"], 2),
            "driver_peak_mb": max((p for p in (short["driver_peak_mb"], long["driver_peak_mb"]) if p is not None),
                                  default=None)}


def scenario_backfill_ratio(home: Path, accounts: int) -> Dict[str, Any]:
    from localmode.generator import generate, write_corrections

    env = _env(home)
    generate(env.config, env.landing, accounts, 12, "2023-01", 0, 11)
    _process(env)
    pid = _jvm_pid(env.runner.session())
    generate(env.config, env.landing, accounts, 13, "2023-01", 0, 11)
    _reset_peak(pid)
    t0 = time.monotonic()
    _process(env)
    forward = time.monotonic() - t0
    write_corrections(env.config, env.landing, list(range(1, accounts // 100 + 1)), ["2023-06"], 1000, 30,
                      datetime(2025, 3, 1, tzinfo=timezone.utc))
    t0 = time.monotonic()
    _process(env)
    backfill = time.monotonic() - t0
    return {"accounts": accounts, "forward_s": round(forward, 1), "backfill_1pct_s": round(backfill, 1),
            "ratio_backfill_over_forward": round(backfill / forward, 2), "driver_peak_mb": _peak_mb(pid)}


def scenario_plan_metadata(home: Path, months: int = 60) -> Dict[str, Any]:
    """The Plan's read of the summary table: newest month from metadata, ``months`` partitions."""
    import statistics

    from datadominion.catalog import load_pyiceberg_catalog, local_catalog_settings
    from datadominion.months import add_months
    from datadominion.table_metadata import newest_summarised_month
    from tests.support.iceberg_files import month_partitioned_table, opened_files

    catalog = load_pyiceberg_catalog(local_catalog_settings(home))
    catalog.create_namespace("bench")
    month_partitioned_table(catalog, "bench.summary", [add_months("2020-01", i) for i in range(months)], 10_000)
    newest_summarised_month(catalog, "bench.summary")  # warm imports
    timings = []
    for _ in range(10):
        with opened_files() as paths:
            t0 = time.monotonic()
            newest = newest_summarised_month(catalog, "bench.summary")
            timings.append(time.monotonic() - t0)
    data_files = [p for p in paths if p.endswith(".parquet")]
    return {"partitions": months, "newest": newest, "median_s": round(statistics.median(timings), 3),
            "max_s": round(max(timings), 3), "files_opened": len(paths),
            "metadata_files_opened": len(paths) - len(data_files), "data_files_opened": len(data_files)}


def scenario_command_start(home: Path, rounds: int = 3) -> Dict[str, Any]:
    """Short `datadominion` commands (`show`, `validate`) over the class archive's story tables,
    each a JVM of its own, with and without the driver's class-data archive, alternating in the
    same run (localmode/class_archive.py)."""
    import statistics

    from localmode.class_archive import ensure, run_story

    t0 = time.monotonic()
    archive = ensure()
    recorded_s = time.monotonic() - t0
    run_story(str(home))  # the tables the commands read (this process's own JVM)
    timings: Dict[str, List[float]] = {}
    for _ in range(rounds):
        for mode in ("on", "off"):
            env = cli_env(home, DATADOMINION_CLASS_ARCHIVE=mode)
            for command in (["show", "--account", "2"], ["validate"]):
                started = time.monotonic()
                run_cli(home, *command, env=env, check=True)
                timings.setdefault(f"{command[0]}_{mode}", []).append(round(time.monotonic() - started, 2))
    return {"archive": str(archive), "ensure_s": round(recorded_s, 1),
            "median_s": {k: round(statistics.median(v), 2) for k, v in timings.items()}, "runs_s": timings}


def scenario_static_lookups(home: Path, pairs: int = 5) -> Dict[str, Any]:
    """One-record backfill steps after the seed's Test Case 2, alternating with and without the
    session's remembered JVM lookups (datadominion/jvm_lookups.py) in one process: each step's
    seconds and the py4j requests it sent."""
    import statistics

    from datadominion import jvm_lookups
    from localmode.generator import generate

    env = _env(home)
    generate(env.config, env.landing, 100, 60, "2020-01", 10, 42)
    _process(env)
    spark = env.runner.session()
    runs: Dict[str, List[Dict[str, Any]]] = {"forgotten": [], "remembered": []}
    with py4j_requests(spark) as sent:
        for number in range(pairs + 1):  # the first pair warms the JVM and is left out
            for mode in runs:
                if mode == "forgotten":
                    forget_static_lookups(spark)
                else:
                    jvm_lookups.remember_static_lookups(spark)
                sent[0] = 0
                step = _one_record_step(env, 10 + 2 * number + (mode == "remembered"), f"{mode}{number}")
                if number:
                    runs[mode].append({"seconds": step["one_record_s"], "py4j_requests": sent[0],
                                       "inside_jobs_s": step["one_record_jobs"]["inside_jobs_s"]})
    jvm_lookups.remember_static_lookups(spark)
    return {"median_s": {mode: statistics.median(r["seconds"] for r in steps) for mode, steps in runs.items()},
            "runs": runs}


def scenario_soak(home: Path, months: int = 24, rounds: int = 3, accounts: int = 500) -> Dict[str, Any]:
    """Many small batches arriving while `datadominion watch` runs: ``months`` forward months
    delivered one by one, then ``rounds`` correction batches per month (backfills), out of
    order. Afterwards `validate` must hold and every batch must be DONE exactly once."""
    import random

    from datadominion.adapters.sqlite_ledger import SqliteLedger
    from datadominion.config import load_pipeline_config
    from datadominion.ledger import DONE
    from datadominion.months import add_months
    from localmode.generator import generate, write_corrections

    config = load_pipeline_config(REPO / "configs" / "pipeline.json")
    landing = home / "landing"
    watch = start_cli(home, "watch", "--interval", "1")
    started = time.monotonic()
    delivered = 0
    try:
        all_months = [add_months("2022-01", i) for i in range(months)]
        for number, month in enumerate(all_months):
            generate(config, landing, accounts, 1, month, gap_pct=5, seed=100 + number, batch_prefix="feed")
            delivered += 1
            time.sleep(0.5)
        rng = random.Random(7)
        for round_number in range(rounds):
            for month in rng.sample(all_months, len(all_months)):
                while True:  # an account absent up to that month (a gap) cannot be corrected: pick again
                    chosen = rng.sample(range(1, accounts + 1), 5)
                    try:
                        write_corrections(config, landing, chosen, [month], 100 * (round_number + 1),
                                          round_number + 1, datetime(2025, 1, 1 + round_number, tzinfo=timezone.utc),
                                          batch_label=f"corr{round_number}")
                        break
                    except ValueError:
                        continue
                delivered += 1
                time.sleep(0.2)
        ledger = SqliteLedger(home / "ledger.db")
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            states = [b.state for b in ledger.batches()]
            if len(states) == delivered and set(states) == {DONE}:
                break
            time.sleep(2)
        applied = time.monotonic() - started
    finally:
        watch.terminate()
        watch.wait(timeout=600)
    records = SqliteLedger(home / "ledger.db").batches()
    t0 = time.monotonic()
    check = run_cli(home, "validate", timeout=None)
    return {"batches_delivered": delivered, "batches_done": sum(r.state == DONE for r in records),
            "max_attempts": max(r.attempts for r in records), "runs": len(SqliteLedger(home / "ledger.db").runs(10000)),
            "all_applied_s": round(applied, 1), "validate_exit": check.returncode,
            "validate_s": round(time.monotonic() - t0, 1), "validate_tail": check.stdout.strip().splitlines()[-1:]}


def _month_figures(env: Any, seconds: float) -> Dict[str, Any]:
    """One month's line: the step time, each table's files and bytes, and a full read of both."""
    from pyspark.sql import functions as F

    from datadominion.table_metadata import table_health

    spark = env.runner.session()
    t0 = time.monotonic()
    for table in (env.runner.tables.summary, env.runner.tables.latest_summary):
        spark.table(table).agg(F.sum("past_due_am")).collect()
    read_s = time.monotonic() - t0
    line: Dict[str, Any] = {"step_s": round(seconds, 1), "full_read_s": round(read_s, 2)}
    for table, name in ((env.config.destination_table, "summary"), (env.config.latest_history_table, "latest")):
        health = table_health(env.catalog, env.identifier(table), name, 1)
        assert health is not None, f"{table} does not exist"
        summary = env.catalog.load_table(env.identifier(table)).current_snapshot().summary
        line[name] = {"files": health.data_files, "deletes": health.delete_files, "snapshots": health.snapshots,
                      "mb": round(int(summary.get("total-files-size", 0)) / 2**20, 1)}
    return line


def _months_with_backfills(home: Path, accounts: int, months: int, maintain_every: int) -> List[Dict[str, Any]]:
    """``months`` forward months, each followed by a backfill of 1% of accounts scattered over
    the key space into the month before; with ``maintain_every`` > 0 a maintenance step runs
    every that many months (in production the Plan's thresholds fire at most daily; months are
    compressed into minutes here), else never."""
    from localmode.generator import generate, write_corrections

    env = _env(home)
    never: Dict[str, Any] = {"maintenance_due": lambda: []}
    lines = []
    for n in range(1, months + 1):
        generate(env.config, env.landing, accounts, n + 1, "2023-01", 0, 5)
        t0 = time.monotonic()
        assert env.process(notify=lambda _: None, **never).ok
        forward_s = time.monotonic() - t0
        previous = f"{2023 + (n - 1) // 12}-{(n - 1) % 12 + 1:02d}"
        write_corrections(env.config, env.landing, list(range(1, accounts + 1, 100)), [previous], 7, 1,
                          datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=n))
        t0 = time.monotonic()
        assert env.process(notify=lambda _: None, **never).ok
        backfill_s = time.monotonic() - t0
        maintained_s = 0.0
        if maintain_every and n % maintain_every == 0:
            t0 = time.monotonic()
            assert env.process(notify=lambda _: None, maintain=True, **never).ok
            maintained_s = time.monotonic() - t0
        line = _month_figures(env, forward_s)
        line.update(backfill_s=round(backfill_s, 1), maintenance_s=round(maintained_s, 1))
        lines.append(line)
    return lines


def scenario_maintenance(accounts: int, months: int) -> Dict[str, Any]:
    """Table health month by month with and without maintenance, in the same run (each side in
    its own process: one process has one SparkSession, wired to one catalog)."""
    without = _child("maintenance_never", accounts, months)["lines"]
    with_ = _child("maintenance_every_3", accounts, months)["lines"]
    return {"accounts": accounts, "months": months, "without": without, "with": with_,
            "last_forward_s": {"without": without[-1]["step_s"], "with": with_[-1]["step_s"]},
            "last_full_read_s": {"without": without[-1]["full_read_s"], "with": with_[-1]["full_read_s"]}}


class _StageMeter:
    """Task time and bytes of every Spark stage that ran since the meter was (re)set, from the
    session's status store (bounded to its newest 200 stages; ``truncated`` says if that cut)."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.reset()

    def _stages(self) -> List[Any]:
        return spark_stages(self.spark)

    def reset(self) -> None:
        self.seen = {d.stageId() for d in self._stages()}

    def read(self) -> Dict[str, Any]:
        new = [d for d in self._stages() if d.stageId() not in self.seen]
        mb = 2**20
        figures = {"spark_stages": len(new), "task_s": round(sum(d.executorRunTime() for d in new) / 1000, 1),
                   "input_mb": round(sum(d.inputBytes() for d in new) / mb, 1),
                   "shuffle_write_mb": round(sum(d.shuffleWriteBytes() for d in new) / mb, 1),
                   "output_mb": round(sum(d.outputBytes() for d in new) / mb, 1),
                   "truncated": bool(new and self.seen) and min(d.stageId() for d in new) > max(self.seen) + 1}
        self.reset()
        return figures


class _JobMeter:
    """The Spark jobs that ran since the meter was made, from the session's status store: how
    many, the time inside them and the driver's time around them, and the longest jobs, each
    with its call site, its stage of the step and the driver time just before it (where a
    fixed cost per step goes: planning, metadata and commits show as gaps, not jobs)."""

    LONGEST = 8

    def __init__(self, spark: Any) -> None:
        self.store = spark.sparkContext._jsc.sc().statusStore()
        self.seen = {j.jobId() for j in self._jobs()}

    def _jobs(self) -> List[Any]:
        return java_list(self.store.jobsList(None))

    def read(self, wall_s: float) -> Dict[str, Any]:
        new = sorted((j for j in self._jobs() if j.jobId() not in self.seen), key=lambda j: j.jobId())
        timed, previous_end = [], None
        for job in new:
            if not (job.submissionTime().isDefined() and job.completionTime().isDefined()):
                continue
            start, end = job.submissionTime().get().getTime(), job.completionTime().get().getTime()
            gap = max(0, start - previous_end) if previous_end is not None else 0
            previous_end = end if previous_end is None else max(previous_end, end)
            timed.append({"ms": end - start, "driver_ms_before": gap, "call": str(job.name())[:90],
                          "stage": str(job.description().get()) if job.description().isDefined() else ""})
        inside = sum(j["ms"] for j in timed)
        return {"spark_jobs": len(new), "inside_jobs_s": round(inside / 1000, 2),
                "outside_jobs_s": round(wall_s - inside / 1000, 2),
                "longest": sorted(timed, key=lambda j: -(j["ms"] + j["driver_ms_before"]))[:self.LONGEST]}


class _ScanMeter:
    """The Iceberg files that each SQL execution's scans kept and skipped since the meter was
    made, from the session's SQL status store: Iceberg reports them from its scan planning as
    driver metrics of each BatchScan node, with the write node of the execution (a MERGE's
    WriteDelta, an append's AppendData) where it writes: files scanned per MERGE."""

    FILES = {"number of result data files": "data_files", "number of result delete files": "delete_files",
             "number of skipped data files": "skipped_data_files"}  # Iceberg's metric descriptions
    WRITES = ("WriteDelta", "ReplaceData", "AppendData", "OverwriteByExpression", "OverwritePartitionsDynamic")

    RETAINED = "spark.sql.ui.retainedExecutions"  # the store drops the oldest past this many

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.store = spark._jsparkSession.sharedState().statusStore()
        self.seen = {e.executionId() for e in self._executions()}

    def _seq(self, seq: Any) -> List[Any]:
        return scala_list(self.spark, seq)

    def _executions(self) -> List[Any]:
        return self._seq(self.store.executionsList())

    def _scans(self, execution_id: int) -> Tuple[List[Dict[str, Any]], Optional[str]]:
        """Each BatchScan's table and files, and the execution's write node if it has one."""
        converters = self.spark._jvm.scala.collection.JavaConverters
        metrics = converters.mapAsJavaMap(self.store.executionMetrics(execution_id))
        values = {int(e.getKey()): str(e.getValue()) for e in java_list(metrics.entrySet())}
        nodes = self._seq(self.store.planGraph(execution_id).allNodes())
        scans = []
        for node in nodes:
            name = str(node.name())
            if name.startswith("BatchScan"):
                found = {self.FILES[str(m.name())]: _leading_int(values.get(int(m.accumulatorId()), ""))
                         for m in self._seq(node.metrics()) if str(m.name()) in self.FILES}
                scans.append({"table": name.removeprefix("BatchScan").strip().split(".")[-1], **found})
        write = next((str(n.name()) for n in nodes if str(n.name()).startswith(self.WRITES)), None)
        return scans, write

    def read(self) -> Dict[str, Any]:
        """Every scan in order, each with the write node of its execution (None for a query);
        the files kept over all of them."""
        new = sorted(e.executionId() for e in self._executions() if e.executionId() not in self.seen)
        scans = []
        for execution_id in new:
            found, write = self._scans(execution_id)
            scans += [{**scan, "write": write} for scan in found]
        totals = {metric: sum(scan.get(metric) or 0 for scan in scans) for metric in self.FILES.values()}
        truncated = bool(new and self.seen) and new[0] > max(self.seen) + 1  # the store dropped some
        return {"sql_executions": len(new), **totals, "truncated": truncated, "scans": scans}


def _leading_int(text: str) -> Optional[int]:
    """The number a SQL metric's value starts with ("3", "1,024"); None when it holds none."""
    found = re.match(r"\s*([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else None


def _scale_point(home: Path, accounts: int, months: int = 1) -> Dict[str, Any]:
    """One size of the scale model: ``months`` initial months, a forward month and a backfill
    of 1% of accounts scattered over the key space (every 100th key) into the first month (so
    every month is in its window), each timed with its Spark task time and bytes; the DuckDB
    forward month on the same inputs."""
    from datadominion.months import add_months
    from localmode.generator import generate, write_corrections

    env = _env(home)
    generate(env.config, env.landing, accounts, months, "2024-01", 0, 3)
    t0 = time.monotonic()
    _process(env)
    initial = time.monotonic() - t0
    spark = env.runner.session()
    pid, meter = _jvm_pid(spark), _StageMeter(spark)
    latest_before = env.catalog.load_table(env.identifier(env.config.latest_history_table)).scan().to_arrow()
    generate(env.config, env.landing, accounts, months + 1, "2024-01", 0, 3)
    _reset_peak(pid)
    meter.reset()
    t0 = time.monotonic()
    forward_report = _process(env)
    forward = time.monotonic() - t0
    forward_spark = meter.read()
    write_corrections(env.config, env.landing, list(range(1, accounts + 1, 100)), ["2024-01"], 7, 1,
                      datetime(2026, 1, 1, tzinfo=timezone.utc))
    meter.reset()
    t0 = time.monotonic()
    backfill_report = _process(env)
    backfill = time.monotonic() - t0
    backfill_spark = meter.read()
    # The recompute of many months is left out: its map lookups took DuckDB > 20 min at 250k x 25.
    reference = _duckdb_reference(env, home, add_months("2024-01", months), latest_before, recompute=months == 1)
    stored = {}
    for table in (env.config.destination_table, env.config.latest_history_table):
        summary = env.catalog.load_table(env.identifier(table)).current_snapshot().summary
        stored[table] = {"mb": round(int(summary["total-files-size"]) / 2**20, 1),
                         "bytes_per_row": round(int(summary["total-files-size"]) / int(summary["total-records"]))}
    return {"accounts": accounts, "months": months, "initial_s": round(initial, 1),
            "forward": {"s": round(forward, 1), "records_per_s": round(accounts / forward),
                        "stages": forward_report.get("stage_seconds"), **forward_spark},
            "backfill_1pct": {"s": round(backfill, 1), "records": backfill_report.get("changed_records"),
                              "stages": backfill_report.get("stage_seconds"), **backfill_spark},
            "ratio_backfill_over_forward": round(backfill / forward, 2), "driver_peak_mb": _peak_mb(pid),
            "stored": stored, "duckdb_forward_s": reference["duckdb_forward_s"],
            "ratio_engine_over_duckdb_forward": round(forward / reference["duckdb_forward_s"], 1)}


def scenario_scale(home: Path, sizes: List[int]) -> Dict[str, Any]:
    """The scale model's measured points: each size in its own process, in the same run; and
    the Plan's metadata read with 40 years of month partitions."""
    points = [_child("scale_point", n) for n in sizes]
    window = _child("scale_point", sizes[-1] // 10, 12)  # how a backfill's cost grows with its window
    return {"points": points, "forward_records_per_task_s": [
        round(p["accounts"] / p["forward"]["task_s"]) for p in points if p["forward"]["task_s"]],
        "backfill_with_12_months": window,
        "plan_metadata_40_years": scenario_plan_metadata(home, 480)}


def _child(name: str, *params: int) -> Dict[str, Any]:
    """Run a part of a scenario in a fresh process; its RESULT."""
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.run", "--child", name,
                          "--params", ",".join(str(p) for p in params)], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, SPARK_LOCAL_IP="127.0.0.1"))
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return dict(json.loads(line[7:]))


# Parts run by _child, with their integer parameters.
PARTS = {
    "forward_h6": lambda home, p: _load_then_forward(home, p[0], 6),
    "forward_h60": lambda home, p: _load_then_forward(home, p[0], 60),
    "maintenance_never": lambda home, p: {"lines": _months_with_backfills(home, p[0], p[1], maintain_every=0)},
    "maintenance_every_3": lambda home, p: {"lines": _months_with_backfills(home, p[0], p[1], maintain_every=3)},
    "scale_point": lambda home, p: _scale_point(home, *p),
}

SCENARIOS = {
    "seed_case_2": lambda home, large: scenario_seed_case_2(home),
    "late_set": lambda home, large: scenario_late_set(home),
    "one_record": lambda home, large: scenario_one_record(home, 1_000_000 if large else 100_000),
    "forward_100k": lambda home, large: scenario_forward(home, 100_000),
    "forward_1m": lambda home, large: scenario_forward(home, 1_000_000),
    "history_ratio": lambda home, large: scenario_history_ratio(home, 20_000 if large else 5_000),
    "backfill_ratio": lambda home, large: scenario_backfill_ratio(home, 100_000 if large else 20_000),
    "plan_metadata": lambda home, large: scenario_plan_metadata(home),
    "soak": lambda home, large: scenario_soak(home, 60 if large else 24),
    "scale": lambda home, large: scenario_scale(
        home, [250_000, 500_000, 1_000_000] if large else [25_000, 50_000, 100_000]),
    "command_start": lambda home, large: scenario_command_start(home),
    "static_lookups": lambda home, large: scenario_static_lookups(home),
    "maintenance": lambda home, large: scenario_maintenance(100_000 if large else 1_000, 24 if large else 9),
}
DEFAULT = ["seed_case_2", "late_set", "forward_100k", "history_ratio", "backfill_ratio", "plan_metadata"]


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(SCENARIOS))
    parser.add_argument("--large", action="store_true", help="also 1M-account forward; bigger ratio runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="dd-bench-") as tmp:
            if args.child in PARTS:
                result = PARTS[args.child](Path(tmp), [int(p) for p in args.params.split(",") if p])
            else:
                result = SCENARIOS[args.child](Path(tmp), args.large)
            print("RESULT " + json.dumps(result))
        return 0
    names = [args.only] if args.only else DEFAULT + (["forward_1m"] if args.large else [])
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    for name in names:
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "tests.benchmarks.run", "--child", name]
                             + (["--large"] if args.large else []), cwd=REPO, env=env, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: FAILED\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
            return 1
        print(f"{name} ({time.monotonic() - started:.0f}s wall): {line[7:]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
