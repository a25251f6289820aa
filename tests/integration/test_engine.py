"""The summary engine on real Spark + Iceberg, checked against an independent Python reference."""

from __future__ import annotations

import os
import random
import re
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone

import pytest
from pyspark.sql import functions as F

from datadominion.months import add_months, format_month, parse_month
from datadominion.steps import Step
from emr_jobs import file_reads, ingest, summarise
from emr_jobs import transforms as tx
from emr_jobs.publish import audit_branch
from emr_jobs.summarise import INTERPRET_SMALL_STEPS
from emr_jobs.summary_job import run_step
from localmode.generator import generate, write_corrections
from tests.support.batches import record, write_batch
from tests.support.reference import diff_tables, expected_tables
from tests.support.steps import (
    Crash,
    actual_tables,
    as_step_batches,
    assert_equals_reference,
    audit_refs,
    bad_cases,
    crash_at,
    rule_of,
    snapshots,
    step_of,
    summarised_by_one_step,
)
from tests.support.tables import set_back_after

pytestmark = pytest.mark.spark


def _seed_case(spark, env, accounts, months, start, gap_pct, targets, target_months, dpd_delta, pd_delta):
    written = generate(env.config, env.landing, accounts, months, start, gap_pct, seed=7)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written)))
    before, _ = actual_tables(spark, env)
    rows_before = len(before)
    corrections = write_corrections(env.config, env.landing, targets, target_months, pd_delta, dpd_delta,
                                    datetime(2025, 6, 1, tzinfo=timezone.utc))
    report = run_step(spark, env.tables, step_of("backfill", as_step_batches(corrections)))
    assert report.accounts_by_class == {"backfill": len(targets)}
    after, latest = actual_tables(spark, env)
    for account in targets:
        for month in target_months:
            b, a = before.get((account, month)), after[(account, month)]
            if b is not None:
                assert a["past_due_am"] - b["past_due_am"] == pd_delta
                assert a["days_past_due"] - b["days_past_due"] == dpd_delta
            for k in range(env.config.history_length):
                later = after.get((account, add_months(month, k)))
                if later is None:
                    continue
                assert later["past_due_am_history"][k] == a["past_due_am"], (account, month, k)
                assert later["days_past_due_history"][k] == a["days_past_due"], (account, month, k)
                grid = "".join("?" if v is None else v for v in later["payment_rating_cd_history"])
                assert later["payment_history_grid"] == grid
        newest = max(m for (acct, m) in after if acct == account)
        assert latest[account] == after[(account, newest)]
    created = sum(1 for a in targets for m in target_months if (a, m) not in before)
    assert len(after) == rows_before + created
    # rows of untouched accounts are exactly as before
    assert {k: v for k, v in after.items() if k[0] not in targets} == \
        {k: v for k, v in before.items() if k[0] not in targets}
    assert_equals_reference(spark, env)


def test_seed_test_case_1_single_month_backfill(spark, isolated):
    _seed_case(spark, isolated, 100, 6, "2024-01", 0, [11, 12, 13, 14, 15], ["2024-03"], 30, 10_000)


def test_seed_test_case_2_multi_gap_backfill(spark, isolated):
    _seed_case(spark, isolated, 100, 60, "2020-01", 10, [1, 2, 3], ["2021-03", "2022-06", "2023-09"], 60, 20_000)


# --- semantics case by case ---------------------------------------------------------------
@pytest.fixture(params=["small step", "small step, whole partitions", "small step, whole partitions, many records",
                        "generated code, whole partitions"])
def execution(request, spark, monkeypatch):
    """A small step runs on Spark's interpreted path and names its few accounts in its reads
    (emr_jobs/summarise.size_step, transforms.named_keys); one of more accounts than it can name
    scans whole month partitions on generated code and the rest interpreted (emr_jobs/codegen.py),
    all of it compiled when its records are many (summarise.compile_many_unnamed); a large one
    compiles its plans, whole-stage code off, and reads whole month partitions. A scenario run
    each way covers all four."""
    if request.param != "small step":
        monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    if request.param.endswith("many records"):
        monkeypatch.setattr(summarise, "INTERPRETED_UNNAMED_RECORDS", 0)
    if request.param == "generated code, whole partitions":
        spark.conf.set(INTERPRET_SMALL_STEPS, "false")
    yield request.param
    spark.conf.unset(INTERPRET_SMALL_STEPS)


def test_named_accounts_reach_the_iceberg_scans_of_both_tables(spark, isolated):
    """The accounts a small step names are pushed into Iceberg's scan (which prunes files and
    row groups by them), and a step of more accounts than Iceberg evaluates names none."""
    env, cfg = isolated, isolated.config
    rows = [record(cfg, k, "2020-01") for k in (1, 2, 3)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2020-01", "b1", rows, cfg)]))
    keys = tx.named_keys(spark.table(env.tables.latest_summary).where("cons_acct_key < 3"), cfg.key_column)
    assert keys == (1, 2)
    for table in (env.tables.summary, env.tables.latest_summary):
        scan = spark.table(table).where(tx.among(keys, cfg.key_column))
        plan = scan._jdf.queryExecution().executedPlan().toString()
        assert "filters=cons_acct_key IN (1, 2)" in plan, plan
        assert sorted(r[cfg.key_column] for r in scan.collect()) == [1, 2]
    many = spark.range(tx.NAMED_KEYS_LIMIT + 1).withColumnRenamed("id", cfg.key_column)
    assert tx.named_keys(many, cfg.key_column) is None
    assert tx.named_keys(many.limit(0), cfg.key_column) is None  # nothing to name: no filter at all
    assert tx.among_sql((1, 2), "t.k") == "t.k IN (1, 2)" and tx.among_sql(None, "t.k") == "TRUE"


def test_a_read_that_names_an_account_decodes_only_the_row_groups_that_can_hold_it(spark, isolated):
    """Summary is written in key order in row groups of a set size (emr_jobs/tables.py), so a
    read naming one account decodes the row group whose key bounds hold it, not the file: at
    Parquet's default size a month of 1M accounts was one row group, decoded whole by every
    small late batch's reads. Set on the existing table here, as a deployment's tables get it."""
    import pyarrow.parquet as pq

    from emr_jobs.tables import ROW_GROUP_PROPERTY, create_tables, iceberg_table
    from tests.support.jvm import records_read

    env, cfg = isolated, isolated.config
    create_tables(spark, env.tables, 4, row_group_bytes=64 * 1024)
    assert iceberg_table(spark, env.tables.summary).properties().get(ROW_GROUP_PROPERTY) == str(64 * 1024)
    accounts = 3_000
    rows = [record(cfg, k, "2020-01", past_due_am=k) for k in random.Random(3).sample(range(1, accounts + 1), accounts)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2020-01", "b1", rows, cfg)]))
    files = [pq.ParquetFile(r[0].removeprefix("file:")).metadata
             for r in spark.sql(f"SELECT file_path FROM {env.tables.summary}.files").collect()]
    assert all(f.num_row_groups >= 2 for f in files), [(f.num_rows, f.num_row_groups) for f in files]
    with records_read(spark) as read:
        found = spark.table(env.tables.summary).where(tx.among((1_500,), cfg.key_column)).collect()
    assert [r["past_due_am"] for r in found] == [1_500]
    assert 0 < read[0] < min(f.num_rows for f in files), (read[0], [f.num_rows for f in files])


def _target_scan_columns(spark, sql):
    """The columns the MERGE's scan of its target reads (the scan that also reads _file and
    _pos, the row positions a merge-on-read MERGE deletes by)."""
    plan = spark.sql(f"EXPLAIN {sql}").first()[0]
    scans = [columns for _, columns in _batch_scans(plan) if "_pos" in columns]
    assert len(scans) == 1, plan
    return scans[0] - {"_file", "_pos", "_spec_id", "_partition"}


def _batch_scans(plan):
    """(table, columns read) of each Iceberg scan (BatchScan) in a plan's text."""
    return [(m.group(1), {column.split("#")[0] for column in m.group(2).split(", ")})
            for m in re.finditer(r"BatchScan (\S+)\[([^\]]*)\]", plan)]


@pytest.mark.parametrize("keys", [None, (1, 2)])
def test_both_merges_read_only_key_and_month_of_their_target(spark, isolated, keys):
    """A MERGE whose condition compares whole rows reads every history array of every target
    file it touches (3.5 s against 0.4 s for a one-record step at 1M accounts): both MERGEs
    match on keys and guard only the month, so their target scans read two columns."""
    from emr_jobs.summarise import LATEST_ROWS_VIEW, SUMMARY_ROWS_VIEW, latest_merge_sql, summary_merge_sql
    from emr_jobs.tables import summary_column_names

    env, cfg = isolated, isolated.config
    rows = [record(cfg, k, "2020-01") for k in (1, 2, 3)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2020-01", "b1", rows, cfg)]))
    columns = summary_column_names(cfg)
    spark.table(env.tables.summary).select(*columns).createOrReplaceTempView(SUMMARY_ROWS_VIEW)
    spark.table(env.tables.latest_summary).select(*columns).createOrReplaceTempView(LATEST_ROWS_VIEW)
    wanted = {cfg.key_column, cfg.month_column}
    assert _target_scan_columns(spark, summary_merge_sql(env.tables, ("2020-01",), keys)) == wanted
    assert _target_scan_columns(spark, latest_merge_sql(env.tables, keys)) == wanted


def test_an_unnamed_backfill_deletes_its_rows_by_a_broadcast_and_appends_them(spark, isolated, monkeypatch):
    """A step of accounts too many to name replaces its summary rows by a delete whose source is
    the broadcast months each account replaces, and an append: a MERGE that also inserts
    shuffles the key and month of every stored row of its months (a 1% backfill's window: all
    of them). The delete hashes the key alone (a key and month hashed every scanned row's month
    text) and its scan reads key and month; the result is the reference's."""
    from emr_jobs.summarise import SUMMARY_REPLACED_VIEW, replaced_months, summary_delete_sql

    env, cfg = isolated, isolated.config
    key, month = cfg.key_column, cfg.month_column
    run_step(spark, env.tables, step_of("initial", as_step_batches(
        generate(cfg, env.landing, 20, 6, "2023-01", 0, seed=3))))
    per_account = replaced_months(spark.table(env.tables.summary), cfg)
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")  # only the hint may broadcast
    try:
        F.broadcast(per_account).createOrReplaceTempView(SUMMARY_REPLACED_VIEW)
        plan = spark.sql(f"EXPLAIN {summary_delete_sql(env.tables, ('2023-01',))}").first()[0]
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    assert "SortMergeJoin" not in plan, plan
    join_keys = re.findall(r"BroadcastHashJoin \[([^\]]*)\]", plan)
    assert join_keys and all(k.split("#")[0] == key and "," not in k for k in join_keys), plan
    assert _target_scan_columns(spark, summary_delete_sql(env.tables, ("2023-01",))) == {key, month}
    monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    before = spark.sql(f"SELECT count(*) FROM {env.tables.summary}.snapshots").first()[0]
    corrections = write_corrections(cfg, env.landing, [2, 5, 11], ["2023-02"], 7, 1,
                                    datetime(2026, 1, 1, tzinfo=timezone.utc))
    run_step(spark, env.tables, step_of("backfill", as_step_batches(corrections)))
    operations = [r[0] for r in spark.sql(f"SELECT operation FROM {env.tables.summary}.snapshots "
                                          f"ORDER BY committed_at").collect()[before:]]
    assert operations == ["delete", "append"], operations
    assert_equals_reference(spark, env)


def test_forward_gaps_backfill_into_gap_and_stale_record(spark, isolated, execution):
    env, cfg = isolated, isolated.config
    rows = [record(cfg, 1, "2020-01", past_due_am=10), record(cfg, 2, "2020-01", past_due_am=20)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2020-01", "b1", rows, cfg)]))
    # forward: account 1 after a 1-month gap, account 2 after 40 months (36+), account 3 new
    b = write_batch(env.landing, "2020-03", "b2", [record(cfg, 1, "2020-03", past_due_am=11)], cfg)
    report = run_step(spark, env.tables, step_of("forward", [b]))
    assert report.accounts_by_class == {"single_forward": 1}
    b = write_batch(env.landing, "2023-05", "b3", [record(cfg, 2, "2023-05", past_due_am=21),
                                                   record(cfg, 3, "2023-05", past_due_am=30)], cfg)
    run_step(spark, env.tables, step_of("forward", [b]))
    summary, latest = actual_tables(spark, env)
    assert summary[(1, "2020-03")]["past_due_am_history"][:3] == [11, None, 10]
    assert summary[(2, "2023-05")]["past_due_am_history"] == [21] + [None] * 35
    assert summary[(3, "2023-05")]["payment_history_grid"] == "0" + "?" * 35
    # backfill into the gap of account 1 (row created, later row's arrays updated)
    b = write_batch(env.landing, "2020-02", "b4", [record(cfg, 1, "2020-02", 5, past_due_am=99,
                                                          acct_pymt_stat_cd="2")], cfg)
    run_step(spark, env.tables, step_of("backfill", [b]))
    summary, latest = actual_tables(spark, env)
    assert summary[(1, "2020-02")]["past_due_am_history"][:2] == [99, 10]
    assert summary[(1, "2020-03")]["past_due_am_history"][:3] == [11, 99, 10]
    assert summary[(1, "2020-03")]["payment_history_grid"][:3] == "020"
    assert latest[1] == summary[(1, "2020-03")]
    # a late record whose base_ts is not newer changes nothing
    before = snapshots(spark, env)
    b = write_batch(env.landing, "2020-02", "b5", [record(cfg, 1, "2020-02", 1, past_due_am=7)], cfg)
    report = run_step(spark, env.tables, step_of("backfill", [b]))
    assert report.summary_rows_written == 0
    assert snapshots(spark, env)[1:] == before[1:]
    assert actual_tables(spark, env)[0][(1, "2020-02")]["past_due_am"] == 99
    assert_equals_reference(spark, env)


def test_several_corrections_of_one_key_in_one_batch_and_invalid_values(spark, isolated):
    env, cfg = isolated, isolated.config
    rows = [record(cfg, 1, "2021-05", 0, past_due_am=1), record(cfg, 1, "2021-05", 9, past_due_am=3),
            record(cfg, 1, "2021-05", 4, past_due_am=2),
            record(cfg, 2, "2021-05", 0, past_due_am=-5, acct_pymt_stat_cd="X", asset_class_cd_4in="Q",
                   days_past_due_ct_4in=None)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2021-05", "b1", rows, cfg)]))
    summary, _ = actual_tables(spark, env)
    assert summary[(1, "2021-05")]["past_due_am"] == 3
    bad = summary[(2, "2021-05")]
    assert (bad["past_due_am"], bad["payment_rating_cd"], bad["asset_class_cd"], bad["days_past_due"]) == \
        (None, None, None, None)
    assert bad["payment_history_grid"] == "?" * 36
    assert_equals_reference(spark, env)


def test_rerunning_a_step_or_a_month_changes_nothing(spark, isolated):
    env = isolated
    written = generate(env.config, env.landing, 30, 8, "2023-01", 15, seed=4)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written[:6])))
    forward = step_of("forward", as_step_batches(written[6:7]))
    run_step(spark, env.tables, forward)
    state = actual_tables(spark, env)
    before = snapshots(spark, env)
    again = run_step(spark, env.tables, forward)
    assert again.batches_skipped == [forward.batches[0].batch_key] and again.rows_ingested == 0
    assert snapshots(spark, env) == before  # nothing committed at all
    run_step(spark, env.tables, Step("rerun", ("2023-03", "2023-07")))
    assert actual_tables(spark, env) == state
    assert_equals_reference(spark, env)


def test_a_backfill_reads_its_window_without_arrays_and_a_rerun_repairs_a_stored_history(spark, isolated,
                                                                                         monkeypatch):
    """A backfill reads only the scalar columns of its window (Iceberg decodes every history
    array value by value) and rebuilds the existing rows' arrays from them; a re-run reads the
    stored rows whole, so it rewrites a stored history that differs from its recomputation
    (its accounts not named, which would also read them whole)."""
    from emr_jobs.summarise import Holding, StepReads, backfill_rows, prepare_changes

    env, cfg = isolated, isolated.config
    key, month = cfg.key_column, cfg.month_column
    run_step(spark, env.tables, step_of("initial", as_step_batches(
        generate(cfg, env.landing, 20, 6, "2023-01", 0, seed=3))))
    changes = prepare_changes(spark.table(env.tables.accounts_all).where(f"{key} < 3 AND {month} = '2023-02'"), cfg)
    arrays = {r.name for r in cfg.rolling_columns}
    reads = StepReads(spark.table(env.tables.summary), spark.table(env.tables.latest_summary))  # accounts unnamed
    for whole_rows in (False, True):  # a re-run (force) reads the rows whole
        window = backfill_rows(reads, changes, changes.select(key).distinct(),
                               (parse_month("2023-02"), parse_month("2023-02")), cfg, whole_rows,
                               Holding(False, 2), 2).window
        assert (arrays & _scan_columns(spark, window, env.tables.summary)) == (arrays if whole_rows else set())
        window.unpersist()
    monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    spark.sql(f"UPDATE {env.tables.summary} SET past_due_am_history = "
              f"transform(past_due_am_history, (x, i) -> IF(i = 1, -1, x)) WHERE {key} = 1 AND {month} = '2023-05'")
    run_step(spark, env.tables, Step("rerun", ("2023-01", "2023-06")))
    assert_equals_reference(spark, env)


def _scan_columns(spark, df, table):
    """The columns the (one) scan of ``table`` in ``df``'s plan reads."""
    spark.conf.set("spark.sql.debug.maxToStringFields", "1000")  # the plan names every column
    try:
        plan = df._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.unset("spark.sql.debug.maxToStringFields")
    scans = [columns for name, columns in _batch_scans(plan) if name == table]
    assert len(scans) == 1, plan
    return scans[0]


# --- property test ------------------------------------------------------------------------
SCENARIOS = 20
ROUNDS = 4


def _random_scenario(rng, cfg, key_base):
    """Random records of a few accounts (keys key_base+1...): gaps (some 36+), newer and older
    corrections, exact duplicates, same-month corrections in one batch, backfills into gaps;
    split into batches and dealt into ROUNDS arrival rounds in random order."""
    accounts = [key_base + a for a in range(1, rng.randint(3, 6))]
    start = parse_month("2019-01")
    ts = iter(range(key_base * 10, key_base * 10 + 10_000))
    by_month = {}
    for account in accounts:
        month = start + rng.randint(0, 6)
        while month < start + 70:
            by_month.setdefault(month, []).append(record(
                cfg, account, format_month(month), next(ts), past_due_am=rng.choice([0, 5, 70, -1, None]),
                days_past_due_ct_4in=rng.randint(0, 120), acct_pymt_stat_cd=rng.choice("0123456SBDLMX"),
                acct_bal_am=rng.randint(0, 9000)))
            month += rng.choice([2, 3, 5, 37, 40]) if rng.random() < 0.25 else 1
    batches = [(format_month(m), rows) for m, rows in sorted(by_month.items())]
    for _ in range(rng.randint(3, 7)):
        month, rows = rng.choice(batches)
        base = rng.choice(rows)
        kind = rng.choice(["newer", "older", "duplicate", "twice", "fill"])
        later = base["base_ts"].replace(year=2026)
        if kind == "newer":
            batches.append((month, [dict(base, base_ts=later, past_due_am=777)]))
        elif kind == "older":
            batches.append((month, [dict(base, base_ts=base["base_ts"].replace(year=2024), past_due_am=555)]))
        elif kind == "duplicate":
            batches.append((month, [dict(base)]))
        elif kind == "twice":
            batches.append((month, [dict(base, base_ts=later.replace(month=2), past_due_am=1),
                                    dict(base, base_ts=later.replace(month=3), past_due_am=2)]))
        else:
            gap = format_month(parse_month(month) + rng.randint(1, 50))
            batches.append((gap, [dict(base, rpt_as_of_mo=gap, base_ts=base["base_ts"].replace(year=2027))]))
    rng.shuffle(batches)
    rounds = [[] for _ in range(ROUNDS)]
    for spec in batches:
        rounds[0 if rng.random() < 0.4 else rng.randrange(ROUNDS)].append(spec)
    return rounds, [r for _, rows in batches for r in rows]


@pytest.mark.parametrize("reads", ["accounts named", "accounts not named"])
def test_random_arrivals_equal_from_scratch_recomputation(spark, isolated, monkeypatch, reads):
    """SCENARIOS seeded scenarios side by side (disjoint accounts), applied in ROUNDS steps:
    every round's batches of every scenario form one step, in random arrival order. Run with
    the step's accounts named in its reads (a backfill then reads its window's rows whole) and
    not named (it reads their scalars and rebuilds the existing arrays: summarise.backfill_rows)."""
    if reads == "accounts not named":
        monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    env, cfg = isolated, isolated.config
    rounds = [[] for _ in range(ROUNDS)]
    records = {}
    for seed in range(SCENARIOS):
        scenario_rounds, scenario_records = _random_scenario(random.Random(seed), cfg, key_base=(seed + 1) * 100)
        records[seed] = scenario_records
        for number, specs in enumerate(scenario_rounds):
            rounds[number] += [(seed, spec) for spec in specs]
    for number, specs in enumerate(rounds):
        # One batch per month and round, holding every scenario's rows of that month.
        by_month = {}
        for _, (month, rows) in specs:
            by_month.setdefault(month, []).extend(rows)
        batches = [write_batch(env.landing, month, f"r{number}-{month}", rows, cfg) for month, rows in by_month.items()]
        run_step(spark, env.tables, step_of("initial" if number == 0 else "backfill", batches))
    got_summary, got_latest = actual_tables(spark, env)
    for seed, scenario_records in records.items():
        want_summary, want_latest = expected_tables(scenario_records, cfg)
        accounts = {key for key, _ in want_summary}
        mine = {k: v for k, v in got_summary.items() if k[0] in accounts}
        assert diff_tables(mine, want_summary) == [], f"scenario seed={seed}"
        assert diff_tables({k: v for k, v in got_latest.items() if k in accounts}, want_latest) == [], seed


# --- bad batches --------------------------------------------------------------------------
def test_bad_batches_are_each_rejected_once_with_their_rule_and_the_good_one_is_applied(spark, isolated):
    """Every bad batch of the catalogue in one step beside a good one: one run validates each
    once, rejects each bad one naming its rule, and applies the good one."""
    env, cfg = isolated, isolated.config
    seedling = write_batch(env.landing, "2022-02", "seed", [record(cfg, 1, "2022-02", 0)], cfg)
    run_step(spark, env.tables, step_of("initial", [seedling]))
    good = write_batch(env.landing, "2022-02", "good", [record(cfg, 9, "2022-02", 50)], cfg)
    cases = bad_cases(cfg)
    written = [write_batch(env.landing, "2022-02", f"bad{n}", rows, cfg, schema) for n, (_, rows, schema) in
               enumerate(cases)]
    bad = {batch.batch_key: rule for batch, (rule, _, _) in zip(written, cases)}
    report = run_step(spark, env.tables, step_of("backfill", [good, *written]))
    assert {key: rule_of(reason) for key, reason in report.rejected.items()} == bad
    assert all(f"batch {key}" in reason for key, reason in report.rejected.items())
    assert report.batches_appended == [good.batch_key] and report.rows_ingested == 1
    assert spark.table(env.tables.accounts_all).count() == 2
    assert_equals_reference(spark, env)


def test_a_batch_read_alone_is_tagged_from_its_folder_as_its_rows_are_when_read_beside_another(spark, isolated):
    """A step of one batch takes its rows' batch key and path month from its folder once; they
    are what parsing each row's file path gives, which a step of several batches still does."""
    env, cfg = isolated, isolated.config
    key = cfg.key_column
    one = write_batch(env.landing, "2022-02", "one", [record(cfg, 1, "2022-02", 0), record(cfg, 2, "2022-03", 0)], cfg)
    other = write_batch(env.landing, "2022-03", "other", [record(cfg, 3, "2022-03", 0)], cfg)
    alone, beside = ingest.read_all(spark, [one], cfg), ingest.read_all(spark, [one, other], cfg)

    def tags(rows):
        return sorted(tuple(r) for r in rows.select(key, ingest.BATCH, "_path_month").collect())

    assert tags(alone) == [(1, "2022-02/one", "2022-02"), (2, "2022-02/one", "2022-02")]
    assert tags(beside) == [*tags(alone), (3, "2022-03/other", "2022-03")]
    # Parsed per row, the tags come from input_file_name(), a non-deterministic expression.
    assert [rows._jdf.queryExecution().analyzed().deterministic() for rows in (alone, beside)] == [True, False]


def test_a_month_accounts_all_lacks_is_not_joined_to_it_yet_its_batch_conflicts_are_found(spark, isolated):
    """The conflict check asks accounts_all's manifests whether it holds the step's months and
    skips the join with its records when not; a clash inside a batch of a new month is still
    rejected, and a clash with a stored month still found (bad_cases, 'vs accounts_all')."""
    env, cfg = isolated, isolated.config
    seed = write_batch(env.landing, "2022-02", "seed", [record(cfg, 1, "2022-02", 0)], cfg)
    run_step(spark, env.tables, step_of("initial", [seed]))
    month = cfg.month_column
    assert file_reads.holds_files(spark, env.tables.accounts_all, (month, ["2022-02"]))
    assert not file_reads.holds_files(spark, env.tables.accounts_all, (month, ["2022-03", "2022-05"]))
    clash = write_batch(env.landing, "2022-03", "clash", [record(cfg, 5, "2022-03", 3, past_due_am=1),
                                                          record(cfg, 5, "2022-03", 3, past_due_am=2)], cfg)
    stored = write_batch(env.landing, "2022-02", "stored", [record(cfg, 1, "2022-02", 0, past_due_am=12345)], cfg)
    for bad in (clash, stored):
        report = run_step(spark, env.tables, step_of("forward" if bad is clash else "backfill", [bad]))
        assert rule_of(report.rejected[bad.batch_key]) == "no conflicting duplicates"
    assert spark.table(env.tables.accounts_all).count() == 1


def test_validation_costs_the_same_spark_jobs_for_many_batches_as_for_two(spark, isolated):
    """A step's fixed cost must not grow with its batch count: the schemas of all its batches
    are read together (one footer job), not one Spark job per batch."""
    env, cfg = isolated, isolated.config
    run_step(spark, env.tables, step_of("initial", [
        write_batch(env.landing, "2022-02", "seed", [record(cfg, 1, "2022-02", 0)], cfg)]))

    def validation_jobs(count, label):
        batches = [write_batch(env.landing, "2022-02", f"{label}{n}", [record(cfg, 10 + n, "2022-02", 5)], cfg)
                   for n in range(count)]
        report = run_step(spark, env.tables, step_of("backfill", batches))
        assert report.rejected == {} and len(report.batches_appended) == count
        return report.stage_spark_jobs["validate"]

    assert validation_jobs(8, "many") == validation_jobs(2, "two")


def test_a_batch_lacking_a_column_the_others_carry_is_rejected_though_the_merged_schema_passes(spark, isolated):
    """The batches' schemas are read merged, and the merge of a good batch with one lacking a
    column has every column: the per-file footer check must still reject that batch (read
    merged, the absent column would arrive as NULLs)."""
    env, cfg = isolated, isolated.config
    good_rows, cases = [record(cfg, 9, "2022-02", 50)], bad_cases(cfg)
    rule, rows, schema = cases[0]
    assert rule == "schema: missing columns"
    good = write_batch(env.landing, "2022-02", "good", good_rows, cfg)
    lacking = write_batch(env.landing, "2022-02", "lacking", rows, cfg, schema)
    report = run_step(spark, env.tables, step_of("initial", [good, lacking]))
    assert {key: rule_of(reason) for key, reason in report.rejected.items()} == {lacking.batch_key: rule}
    assert "lacks columns ['past_due_am']" in report.rejected[lacking.batch_key]
    assert report.batches_appended == [good.batch_key] and report.rows_ingested == 1


def test_a_step_whose_batches_are_all_bad_changes_nothing(spark, isolated):
    env, cfg = isolated, isolated.config
    run_step(spark, env.tables, step_of("initial", [
        write_batch(env.landing, "2022-02", "seed", [record(cfg, 1, "2022-02", 0)], cfg)]))
    state, before = actual_tables(spark, env), snapshots(spark, env)
    bad = write_batch(env.landing, "2022-02", "bad", [record(cfg, None, "2022-02", 5)], cfg)
    report = run_step(spark, env.tables, step_of("backfill", [bad]))
    assert rule_of(report.rejected[bad.batch_key]) == "non-null cons_acct_key"
    assert snapshots(spark, env) == before and actual_tables(spark, env) == state


def test_a_file_missing_a_column_rejects_its_batch(spark, isolated):
    """mergeSchema would read the file's absent column as NULLs: it must be refused instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datadominion.schema import arrow_schema

    env, cfg = isolated, isolated.config
    batch = write_batch(env.landing, "2022-02", "twofiles", [record(cfg, 1, "2022-02")], cfg)
    schema = arrow_schema(cfg.source_types)
    partial = schema.remove(schema.get_field_index("acct_bal_am"))
    row = {k: v for k, v in record(cfg, 2, "2022-02").items() if k != "acct_bal_am"}
    folder = env.landing / "accounts_all" / "rpt_as_of_mo=2022-02" / "twofiles"
    pq.write_table(pa.Table.from_pylist([row], schema=partial), folder / "part-00001.parquet")
    reason = run_step(spark, env.tables, step_of("initial", [batch])).rejected[batch.batch_key]
    assert rule_of(reason) == "schema: missing columns"
    assert "file part-00001.parquet lacks columns ['acct_bal_am']" in reason
    assert snapshots(spark, env) == (None, None, None)


def test_corrupt_parquet_and_size_ceiling(spark, isolated):
    env, cfg = isolated, isolated.config
    bad = write_batch(env.landing, "2022-02", "corrupt", [record(cfg, 1, "2022-02")], cfg)
    path = env.landing / "accounts_all" / "rpt_as_of_mo=2022-02" / "corrupt" / "part-00000.parquet"
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\x00" * (len(data) - 8) + data[-4:])
    assert rule_of(run_step(spark, env.tables, step_of("initial", [bad])).rejected[bad.batch_key]) == \
        "readable Parquet"
    small = env.config.model_copy(update={"max_batch_rows": 2})
    from emr_jobs.tables import Tables

    tables = Tables(env.tables.catalog, small)
    big = write_batch(env.landing, "2022-03", "big", [record(cfg, k, "2022-03") for k in range(1, 4)], cfg)
    assert "3 rows exceed max_batch_rows=2" in run_step(spark, tables, step_of("initial", [big])).rejected[
        big.batch_key]
    assert snapshots(spark, env) == (None, None, None)


@pytest.fixture(params=["whole months", "files holding the touched rows", "whole months, nothing broadcast",
                        "whole months read as written", "files holding the touched rows read as written"])
def check_reads(request, monkeypatch):
    """The checks read the touched months whole, or (a backfill MERGEd among rows it did not
    touch, its accounts not named) only the data files that hold a touched row
    (checks._rows_at); they meet the touched pairs by a broadcast (a step of few records) or by
    shuffled joins (a large step's, the production forward month's): every check must catch
    every corruption each way. Read as written (accounts not named, no delete files: a forward
    month's, or the files a backfill appended), Spark's Parquet reader reads the files; the
    corruptions then rewrite files (copy-on-write) rather than add delete files, so that reader
    meets them."""
    whole = request.param.startswith("whole months")
    as_written = request.param.endswith("read as written")
    if request.param.endswith("nothing broadcast"):
        monkeypatch.setattr(tx, "BROADCAST_ROWS", 0)
    if whole and not as_written:
        yield False
        return
    monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    reader = "as_written" if whole else "files_of"
    read, directly = _frames_given(monkeypatch, reader)
    with _copy_on_write(request) if as_written else nullcontext():
        yield reader == "files_of"
    assert any(given for _, given in read), f"no check read its rows by file_reads.{reader}"
    assert not as_written or any(directly), "no check read its rows by Spark's Parquet reader"


def _frames_given(monkeypatch, reader):
    """Spy on ``file_reads.<reader>``: the first list it fills says, per call, which table was
    asked for and whether a frame was given; the second, per frame, whether Spark's own Parquet
    reader reads it."""
    given, directly, original = [], [], getattr(file_reads, reader)

    @contextmanager
    def spy(spark, table, *args, **kwargs):
        with original(spark, table, *args, **kwargs) as rows:
            given.append((table, rows is not None))
            if rows is not None:
                directly.append(_reads_parquet_directly(rows))
            yield rows

    monkeypatch.setattr(file_reads, reader, spy)
    return given, directly


@contextmanager
def _copy_on_write(request):
    """The test's tables corrupted by rewriting files, not by adding delete files."""
    env = request.getfixturevalue("checked")[0] if "checked" in request.fixturenames else \
        request.getfixturevalue("isolated")
    spark = request.getfixturevalue("spark")

    def set_modes(mode):
        for table in (env.tables.summary, env.tables.latest_summary):
            spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES "
                      f"('write.update.mode'='{mode}', 'write.delete.mode'='{mode}')")

    set_modes("copy-on-write")
    try:
        yield
    finally:
        set_modes("merge-on-read")


@pytest.fixture(scope="module")
def summarised_once(spark, catalog_settings, pipeline_config, tmp_path_factory):
    """Accounts 1 and 2 over 2022-04 and 2022-05, summarised by one step for all the checks' tests
    below (each corrupts the tables; ``checked`` puts them back), and the touched pairs."""
    def land(env):
        return [write_batch(env.landing, month, f"b{i}", [record(env.config, k, month, i, past_due_am=10 * i + k)
                                                          for k in (1, 2)], env.config)
                for i, month in enumerate(("2022-04", "2022-05"))]

    env = summarised_by_one_step(spark, catalog_settings, pipeline_config,
                                 tmp_path_factory.mktemp("checks") / "landing", land)
    pairs = spark.createDataFrame([(k, m) for k in (1, 2) for m in ("2022-04", "2022-05")],
                                  ["cons_acct_key", "rpt_as_of_mo"])
    return env, pairs


@pytest.fixture
def checked(spark, summarised_once):
    """The step's tables and touched pairs for one test, each table set back to its head after it."""
    env, pairs = summarised_once
    with set_back_after(spark, env.tables.summary, env.tables.latest_summary):
        yield env, pairs


def test_integrity_checks_pass_the_rows_a_step_wrote(spark, checked, check_reads):
    from emr_jobs.checks import check_touched

    env, pairs = checked
    check_touched(spark, env.tables, pairs, among_untouched=check_reads)


def test_integrity_checks_catch_broken_rows(spark, checked, check_reads):
    from emr_jobs.checks import IntegrityError, check_touched

    env, pairs = checked
    spark.sql(f"UPDATE {env.tables.summary} SET past_due_am_history = array(1), "
              f"payment_history_grid = 'x' WHERE cons_acct_key = 2")
    with pytest.raises(IntegrityError) as err:
        check_touched(spark, env.tables, pairs, among_untouched=check_reads)
    message = str(err.value)
    assert "'past_due_am_history has 36 elements'" in message and "(2, '2022-05')" in message
    assert "payment_history_grid matches payment_rating_cd_history" in message
    assert "latest_summary: differs from the summary row of the same month, e.g. [2]" in message


def test_integrity_checks_tell_rows_apart_by_where_a_null_sits(spark, checked, check_reads):
    """latest_summary must equal the summary row of its month exactly: an array holding the
    same values in the same order with a NULL moved is a different row (the checks compare
    fingerprints, and a plain hash skips NULLs)."""
    from emr_jobs.checks import IntegrityError, check_touched

    env, pairs = checked
    history = "past_due_am_history"
    assert spark.table(env.tables.latest_summary).where("cons_acct_key = 2").first()[history][:3] == [12, 2, None]
    spark.sql(f"UPDATE {env.tables.latest_summary} SET {history} = concat(array({history}[0], NULL, {history}[1]), "
              f"slice({history}, 4, 33)) WHERE cons_acct_key = 2")
    with pytest.raises(IntegrityError, match=r"differs from the summary row of the same month, e.g. \[2\]"):
        check_touched(spark, env.tables, pairs, among_untouched=check_reads)


@pytest.mark.parametrize("corruption, message", [
    ("DELETE FROM {summary} WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-04'", "touched rows missing"),
    ("INSERT INTO {summary} SELECT * FROM {summary} WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-05'",
     "duplicate (cons_acct_key, rpt_as_of_mo) rows, e.g. [(2, '2022-05')]"),
    ("INSERT INTO {latest} SELECT * FROM {latest} WHERE cons_acct_key = 2", "several rows per account, e.g. [2]"),
    ("DELETE FROM {latest} WHERE cons_acct_key = 2", "older than the account's newest summary row"),
    ("UPDATE {latest} SET rpt_as_of_mo = '2022-04' WHERE cons_acct_key = 2",
     "older than the account's newest summary row"),
])
def test_integrity_checks_catch_missing_duplicated_and_stale_rows(spark, checked, check_reads, corruption, message):
    """The aggregate check counts rows rather than listing them: every way a count can go
    wrong fails the step, and the detailed queries name it."""
    from emr_jobs.checks import IntegrityError, check_touched

    env, pairs = checked
    spark.sql(corruption.format(summary=env.tables.summary, latest=env.tables.latest_summary))
    with pytest.raises(IntegrityError) as err:
        check_touched(spark, env.tables, pairs, among_untouched=check_reads)
    assert message in str(err.value)


@pytest.fixture(params=["through Iceberg", "read as written"])
def digest_reads(request, monkeypatch):
    """The checks of a step that appended one new row per account (``new_rows``; a forward
    month's), its accounts not named: they compare order-free digests of the tables' rows,
    read through Iceberg (after corruptions that add delete files) or as written; the
    per-account comparison must not run at all."""
    from emr_jobs import checks

    def per_account(*args, **kwargs):
        raise AssertionError("the per-account comparison ran for a step of new rows")

    monkeypatch.setattr(checks, "_touched_rows_fail", per_account)
    monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    if request.param != "read as written":
        yield
        return
    _, directly = _frames_given(monkeypatch, "as_written")
    with _copy_on_write(request):
        yield
    assert any(directly), "no check read its rows as written"


def _newest_pairs(spark):
    """The fixture's newest month as if a forward month had appended it: one pair per account."""
    return spark.createDataFrame([(k, "2022-05") for k in (1, 2)], ["cons_acct_key", "rpt_as_of_mo"])


def test_digest_checks_pass_the_rows_a_forward_month_wrote(spark, checked, digest_reads):
    from emr_jobs.checks import check_touched

    env, _ = checked
    check_touched(spark, env.tables, _newest_pairs(spark), new_rows=True)


@pytest.mark.parametrize("corruption, message", [
    ("UPDATE {summary} SET past_due_am_history = array(1), payment_history_grid = 'x' "
     "WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-05'", "'past_due_am_history has 36 elements'"),
    ("UPDATE {latest} SET past_due_am_history = concat(array(past_due_am_history[0], NULL, past_due_am_history[1]), "
     "slice(past_due_am_history, 4, 33)) WHERE cons_acct_key = 2",
     "differs from the summary row of the same month, e.g. [2]"),
    ("DELETE FROM {summary} WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-05'", "touched rows missing"),
    ("UPDATE {summary} SET cons_acct_key = 3 WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-05'",
     "touched rows missing"),
    ("INSERT INTO {summary} SELECT * FROM {summary} WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-05'",
     "duplicate (cons_acct_key, rpt_as_of_mo) rows, e.g. [(2, '2022-05')]"),
    ("INSERT INTO {latest} SELECT * FROM {latest} WHERE cons_acct_key = 2", "several rows per account, e.g. [2]"),
    ("INSERT INTO {latest} SELECT * FROM {summary} WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2022-04'",
     "several rows per account, e.g. [2]"),
    ("DELETE FROM {latest} WHERE cons_acct_key = 2", "older than the account's newest summary row"),
    ("UPDATE {latest} SET rpt_as_of_mo = '2022-04' WHERE cons_acct_key = 2",
     "older than the account's newest summary row"),
])
def test_digest_checks_catch_every_corruption_of_a_forward_months_rows(spark, checked, digest_reads, corruption,
                                                                       message):
    """Digests, not per-account joins, decide: a row broken, altered (a NULL moved), missing,
    moved to another account or repeated, in either table, and a stale latest row kept beside
    the new one at an older month, each fails the step, and the detailed queries name it."""
    from emr_jobs.checks import IntegrityError, check_touched

    env, _ = checked
    spark.sql(corruption.format(summary=env.tables.summary, latest=env.tables.latest_summary))
    with pytest.raises(IntegrityError) as err:
        check_touched(spark, env.tables, _newest_pairs(spark), new_rows=True)
    assert message in str(err.value)


def test_integrity_checks_judge_only_the_touched_pairs_when_an_accounts_months_skip_one(spark, isolated,
                                                                                         check_reads):
    """The checks find their files through each account's span of touched months, which can
    take in a month between two touched ones: a duplicate there is not the step's row and
    fails nothing, while one at a touched pair fails the step."""
    from emr_jobs.checks import IntegrityError, check_touched

    env, cfg = isolated, isolated.config
    months = ("2022-04", "2022-05", "2022-06")
    batches = [write_batch(env.landing, m, f"b{i}", [record(cfg, k, m, i) for k in (1, 2)], cfg)
               for i, m in enumerate(months)]
    run_step(spark, env.tables, step_of("initial", batches))
    pairs = spark.createDataFrame([(1, "2022-04"), (1, "2022-06"), (2, "2022-05")], ["cons_acct_key", "rpt_as_of_mo"])
    summary = env.tables.summary
    spark.sql(f"INSERT INTO {summary} SELECT * FROM {summary} WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2022-05'")
    check_touched(spark, env.tables, pairs, among_untouched=check_reads)  # not a touched pair
    spark.sql(f"INSERT INTO {summary} SELECT * FROM {summary} WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2022-06'")
    duplicate = r"duplicate \(cons_acct_key, rpt_as_of_mo\) rows, e.g. \[\(1, '2022-06'\)\]"
    with pytest.raises(IntegrityError, match=duplicate):
        check_touched(spark, env.tables, pairs, among_untouched=check_reads)


def test_files_of_reads_only_the_given_files_through_iceberg_with_their_deletes(spark, isolated):
    """Only the given files' rows, deletes applied: by Spark's Parquet reader while no delete
    file applies to them (columns matched by field id), through Iceberg once one does."""
    env, cfg = isolated, isolated.config
    key, month, summary = cfg.key_column, cfg.month_column, env.tables.summary
    batches = [write_batch(env.landing, m, f"b{i}", [record(cfg, k, m, i, past_due_am=k) for k in (1, 2, 3)], cfg)
               for i, m in enumerate(("2022-04", "2022-05"))]
    run_step(spark, env.tables, step_of("initial", batches))
    files = {r[0] for r in spark.table(summary).where(f"{month} = '2022-05'").select("_file").distinct().collect()}
    spark.sql(f"ALTER TABLE {summary} RENAME COLUMN past_due_am TO past_due_amount")
    schema = spark.table(summary).schema
    with file_reads.files_of(spark, summary, None, files, schema, (month, ["2022-05"])) as rows:
        assert _reads_parquet_directly(rows)
        assert sorted((r[key], r[month], r["past_due_amount"]) for r in rows.collect()) == [
            (1, "2022-05", 1), (2, "2022-05", 2), (3, "2022-05", 3)]
    spark.sql(f"DELETE FROM {summary} WHERE {key} = 2 AND {month} = '2022-05'")  # a position delete
    with file_reads.files_of(spark, summary, None, files, schema, (month, ["2022-05"])) as rows:
        assert not _reads_parquet_directly(rows)
        assert sorted((r[key], r[month]) for r in rows.collect()) == [(1, "2022-05"), (3, "2022-05")]
    with file_reads.files_of(spark, summary, None, files | {"file:/nowhere/part-0.parquet"}, schema) as rows:
        assert rows is None  # a file the table does not hold: the caller reads the table whole


def _reads_parquet_directly(rows):
    """Whether ``rows`` is a read by Spark's own Parquet reader (not Iceberg's scan)."""
    plan = rows._jdf.queryExecution().executedPlan().toString()
    return "FileScan parquet" in plan and "BatchScan" not in plan


def test_as_written_reads_what_iceberg_reads_or_declines(spark, isolated):
    """Spark's Parquet reader over a table's data files returns Iceberg's rows, columns matched
    by field id (a renamed column still reads its values); with a delete file, or once a column
    changed type, it declines."""
    env, cfg = isolated, isolated.config
    key, month, summary = cfg.key_column, cfg.month_column, env.tables.summary
    batches = [write_batch(env.landing, m, f"b{i}", [record(cfg, k, m, i, past_due_am=k) for k in (1, 2, 3)], cfg)
               for i, m in enumerate(("2022-04", "2022-05"))]
    run_step(spark, env.tables, step_of("initial", batches))

    def rows(df):
        return sorted((r.asDict() for r in df.where(f"{month} = '2022-05'").collect()), key=lambda r: r[key])

    before = spark.sql(f"SELECT snapshot_id FROM {summary}.snapshots ORDER BY committed_at DESC LIMIT 1").first()[0]
    spark.sql(f"ALTER TABLE {summary} RENAME COLUMN past_due_am TO past_due_amount")
    with file_reads.as_written(spark, summary, None, spark.table(summary).schema, (month, ["2022-05"])) as written:
        assert rows(written) == rows(spark.table(summary))
        assert [r["past_due_amount"] for r in rows(written)] == [1, 2, 3]
    at_before = spark.read.format("iceberg").option("snapshot-id", before).load(summary)
    with file_reads.as_written(spark, summary, before, at_before.schema, (month, ["2022-05"])) as written:
        assert rows(written) == rows(at_before)  # a snapshot's own columns
        assert [r["past_due_am"] for r in rows(written)] == [1, 2, 3]
    spark.sql(f"DELETE FROM {summary} WHERE {key} = 2 AND {month} = '2022-05'")  # a position delete
    with file_reads.as_written(spark, summary, None, spark.table(summary).schema, (month, ["2022-05"])) as written:
        assert written is None
    latest = env.tables.latest_summary
    with file_reads.as_written(spark, latest, None, spark.table(latest).schema) as written:
        assert rows(written) == rows(spark.table(latest))
    spark.sql(f"ALTER TABLE {latest} ALTER COLUMN past_due_am TYPE bigint")  # a promoted column
    with file_reads.as_written(spark, latest, None, spark.table(latest).schema) as written:
        assert written is None


def test_a_forward_step_moving_most_accounts_rewrites_latest_summary_without_delete_files(spark, isolated,
                                                                                          monkeypatch):
    """Write strategy per step: a forward month moving >= LATEST_REPLACE_SHARE of
    latest_summary rewrites it whole (no delete files left over the table); a forward step
    moving a few accounts and a backfill MERGE. Each leaves the from-scratch result. A step
    that rewrites the table reads it by Spark's Parquet reader while no delete file applies,
    else through Iceberg (after the MERGE)."""
    env = isolated
    read, _ = _frames_given(monkeypatch, "as_written")
    written = generate(env.config, env.landing, 40, 4, "2023-01", 0, seed=5)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written[:3])))
    forward = run_step(spark, env.tables, step_of("forward", as_step_batches(written[3:4])))
    assert forward.latest_rows_written == 40
    assert latest_operation(spark, env) == ("overwrite", "0")
    assert_equals_reference(spark, env)
    few = write_batch(env.landing, "2023-05", "few", [record(env.config, k, "2023-05", 9) for k in (1, 2)], env.config)
    assert run_step(spark, env.tables, step_of("forward", [few])).latest_rows_written == 2
    assert latest_operation(spark, env)[0] == "overwrite" and latest_operation(spark, env)[1] != "0"  # a MERGE
    assert_equals_reference(spark, env)
    every = write_batch(env.landing, "2023-06", "every", [record(env.config, k, "2023-06", 10) for k in range(1, 41)],
                        env.config)
    assert run_step(spark, env.tables, step_of("forward", [every])).latest_rows_written == 40
    assert_equals_reference(spark, env)
    assert [given for table, given in read if table == env.tables.latest_summary] == [True, False]


def test_a_forward_step_rewriting_latest_summary_reads_its_rows_once(spark, isolated):
    """The rewrite carries the untouched accounts' rows over from the classification's read of
    latest_summary (decoding the table's history arrays twice cost a forward month at 1M accounts
    ~7 s): once classified, the step needs none of the table's data files, and removing them
    changes nothing."""
    env, cfg = isolated, isolated.config
    written = generate(cfg, env.landing, 40, 3, "2023-01", 0, seed=5)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written)))
    files = [r[0] for r in spark.sql(f"SELECT file_path FROM {env.tables.latest_summary}.files").collect()]
    month = write_batch(env.landing, "2023-04", "most", [record(cfg, k, "2023-04", 9) for k in range(1, 31)], cfg)

    def remove_latest_files(stage):
        if stage == "between_commits":
            for path in files:
                os.remove(path.removeprefix("file:"))

    forward = run_step(spark, env.tables, step_of("forward", [month]), on_stage=remove_latest_files)
    assert forward.latest_rows_written == 30 and latest_operation(spark, env) == ("overwrite", "0")
    assert spark.table(env.tables.latest_summary).count() == 40  # the 10 untouched accounts carried over
    assert_equals_reference(spark, env)


def _plan_shape(df):
    """``df``'s plan above the frames the step holds (each a leaf): how many joins it runs, and
    the columns of each leaf it reads."""
    def walk(node):
        children = node.children()
        if children.size() == 0:
            output = node.output()
            return 0, [sorted(output.apply(i).name() for i in range(output.size()))]
        here = 1 if node.getClass().getSimpleName() == "Join" else 0
        below = [walk(children.apply(i)) for i in range(children.size())]
        return here + sum(j for j, _ in below), [leaf for _, leaves in below for leaf in leaves]
    return walk(df._jdf.queryExecution().withCachedData())


def test_a_forward_months_rows_are_the_held_classification_shifted(spark, isolated, monkeypatch):
    """Each single forward's record rides through the classification, so its row is the held
    classified row shifted: no second join of the wide rows to the records (a shuffle of every
    latest row at 1M accounts), and no second held copy of them (holding cost more than
    shifting again per read). Both ways a forward step classifies: against all of
    latest_summary (it rewrites the table) and against its accounts' rows (it MERGEs)."""
    from emr_jobs import summarise

    env, cfg = isolated, isolated.config
    initial = as_step_batches(generate(cfg, env.landing, 40, 3, "2023-01", 0, seed=5))
    run_step(spark, env.tables, step_of("initial", initial))
    seen, original = [], summarise.build_rows

    def build_rows(*args, **kwargs):
        built = original(*args, **kwargs)
        joins, leaves = _plan_shape(built.computed)
        seen.append((joins, ["_class" in leaf for leaf in leaves]))
        return built

    monkeypatch.setattr(summarise, "build_rows", build_rows)
    for month, accounts in (("2023-04", 30), ("2023-05", 3)):  # most accounts: a rewrite; few: a MERGE
        batch = write_batch(env.landing, month, "f", [record(cfg, k, month, 9) for k in range(1, accounts + 1)], cfg)
        report = run_step(spark, env.tables, step_of("forward", [batch]))
        assert report.accounts_by_class == {"single_forward": accounts}
    assert latest_operation(spark, env)[1] not in (None, "0")  # the second step MERGEd: position deletes
    assert seen == [(0, [True])] * 2  # no join; read from the held classification alone
    assert_equals_reference(spark, env)


def test_a_large_step_holds_no_copy_of_its_records_and_leaves_the_from_scratch_result(
        spark, catalog_settings, pipeline_config, tmp_path, monkeypatch):
    """A step of more records than one shuffle partition takes (here ten, at 1M accounts a
    forward month) holds the frames it reads often in Spark's cache, but not its records:
    de-duplicating them again from the validated scan at each read cost less than caching 1M
    of them (docs/benchmarks.md, seventeenth section). Each step is sized as large: an initial
    load, a forward month that rewrites latest_summary, and a backfill whose record comes
    twice, as identical copies in two batches beside a newer version of another."""
    from pyspark import StorageLevel

    from datadominion.config import ShufflePartitions
    from emr_jobs import summarise
    from tests.support.tables import fresh_tables

    config = pipeline_config.model_copy(update={"shuffle_partitions": ShufflePartitions(rows_per_partition=10)})
    env = fresh_tables(spark, catalog_settings, config, tmp_path / "landing")
    held, records, original = [], [], summarise.prepare_changes

    def prepare_changes(*args, **kwargs):
        records.append(original(*args, **kwargs))
        return records[-1]

    def record_holding(stage):
        if stage == "between_commits":
            held.append((records[-1].storageLevel, spark.conf.get(summarise.ADAPTIVE)))

    monkeypatch.setattr(summarise, "prepare_changes", prepare_changes)
    written = generate(config, env.landing, 40, 4, "2023-01", 0, seed=5)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written[:3])), on_stage=record_holding)
    run_step(spark, env.tables, step_of("forward", as_step_batches(written[3:])), on_stage=record_holding)
    late = [record(config, k, "2023-02", 30, past_due_am=k) for k in range(1, 13)]
    copies = [write_batch(env.landing, "2023-02", label, late, config) for label in ("copy1", "copy2")]
    newer = write_batch(env.landing, "2023-02", "newer", [record(config, 3, "2023-02", 31, past_due_am=99)], config)
    report = run_step(spark, env.tables, step_of("backfill", [*copies, newer]), on_stage=record_holding)
    assert report.changed_records == 12 and report.accounts_by_class == {"backfill": 12}
    assert held == [(StorageLevel.NONE, "true")] * 3  # large steps (adaptive), their records never cached
    assert_equals_reference(spark, env)


ICEBERG_ADVISORY_SIZE = "spark.sql.iceberg.advisory-partition-size"  # Iceberg's session setting (bytes)


def test_a_large_month_is_written_by_several_tasks_into_accounts_all_and_summary(
        spark, catalog_settings, pipeline_config, tmp_path):
    """Iceberg asks for accounts_all's rows clustered by month and summary's ordered by account,
    and does not require the distribution strictly: adaptive execution's rebalance then spreads
    one month over as many write tasks as its size asks, where a strict clustering by month
    would hand production's billion records of a month to one task (docs/decisions.md, "No
    adaptive execution for small steps"). A month of 3,000 records in 6 files, with the
    advisory partition size shrunk to match, must land in several files of each table."""
    from datadominion.config import ShufflePartitions
    from tests.support.tables import fresh_tables

    config = pipeline_config.model_copy(update={"shuffle_partitions": ShufflePartitions(rows_per_partition=10)})
    env = fresh_tables(spark, catalog_settings, config, tmp_path / "landing")
    written = generate(config, env.landing, 3000, 2, "2023-01", 0, seed=5, files_per_batch=6)
    before = spark.conf.get(ICEBERG_ADVISORY_SIZE, None)
    spark.conf.set(ICEBERG_ADVISORY_SIZE, str(32 * 1024))
    try:
        run_step(spark, env.tables, step_of("initial", as_step_batches(written)))
    finally:  # the session serves every test
        if before is None:
            spark.conf.unset(ICEBERG_ADVISORY_SIZE)
        else:
            spark.conf.set(ICEBERG_ADVISORY_SIZE, before)
    for table in (env.tables.accounts_all, env.tables.summary):
        files = dict(spark.sql(f"SELECT partition.{config.month_column}, count(*) FROM {table}.data_files "
                               "GROUP BY 1").collect())
        assert set(files) == {"2023-01", "2023-02"}
        assert min(files.values()) > 1, f"{table}: each month written by one task: {files}"
    assert_equals_reference(spark, env)


def test_a_forward_month_is_checked_by_digests_and_other_steps_account_by_account(
        spark, catalog_settings, pipeline_config, tmp_path, monkeypatch):
    """Only a step that appended one new row per account (a forward month, its accounts not
    named) is checked by digests; an initial load of two months per account and a backfill are
    compared account by account, and each leaves the from-scratch result."""
    from datadominion.config import ShufflePartitions
    from emr_jobs import checks
    from tests.support.tables import fresh_tables

    config = pipeline_config.model_copy(update={"shuffle_partitions": ShufflePartitions(rows_per_partition=10)})
    env = fresh_tables(spark, catalog_settings, config, tmp_path / "landing")
    monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
    ran = []

    def spy(name, label):
        original = getattr(checks, name)

        def counted(*args, **kwargs):
            ran.append(label)
            return original(*args, **kwargs)
        monkeypatch.setattr(checks, name, counted)

    spy("_new_rows_fail", "digests")
    spy("_touched_rows_fail", "per account")
    written = generate(config, env.landing, 40, 3, "2023-01", 0, seed=5)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written[:2])))
    run_step(spark, env.tables, step_of("forward", as_step_batches(written[2:])))
    late = [record(config, k, "2023-02", 30, past_due_am=k) for k in range(1, 13)]
    run_step(spark, env.tables, step_of("backfill", [write_batch(env.landing, "2023-02", "late", late, config)]))
    assert ran == ["per account", "digests", "per account"]
    assert_equals_reference(spark, env)


def test_a_large_forward_month_shuffles_its_records_once_and_hashes_latest_summary(
        spark, catalog_settings, pipeline_config, tmp_path, monkeypatch):
    """A large step that rewrites latest_summary classifies its accounts by one join of its
    records to the whole table. The records are shuffled once, by account, and the per-account
    grouping and the join find them in place (a shuffle by account and month, then another by
    account, sorted each time, cost ~6 s of task time at 1M accounts); the join hashes the
    records and streams the wide latest rows (a sort-merge join sorted every one of them)."""
    from datadominion.config import ShufflePartitions
    from emr_jobs import summarise
    from tests.support.tables import fresh_tables

    config = pipeline_config.model_copy(update={"shuffle_partitions": ShufflePartitions(rows_per_partition=10)})
    env = fresh_tables(spark, catalog_settings, config, tmp_path / "landing")
    written = generate(config, env.landing, 40, 2, "2023-01", 0, seed=5)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written[:1])))
    plans, original = [], summarise.classify

    def classify(*args, **kwargs):
        classified = original(*args, **kwargs)  # its accounts held and counted: the final plan is known
        cached = spark._jsparkSession.sharedState().cacheManager().lookupCachedData(classified.accounts._jdf)
        plans.append(cached.get().cachedRepresentation().cacheBuilder().cachedPlan().toString())
        return classified

    monkeypatch.setattr(summarise, "classify", classify)
    report = run_step(spark, env.tables, step_of("forward", as_step_batches(written[1:])))
    assert report.latest_rows_written == 40
    final = plans[0][plans[0].index("Final Plan"):plans[0].index("Initial Plan")]
    assert "ShuffledHashJoin" in final and "SortMergeJoin" not in final
    assert final.count("Exchange hashpartitioning") == 2  # the records once, latest_summary once
    assert_equals_reference(spark, env)


def latest_operation(spark, env):
    """The newest latest_summary snapshot's operation and its count of position deletes."""
    row = spark.sql(f"SELECT operation, summary['total-position-deletes'] FROM {env.tables.latest_summary}.snapshots "
                    "ORDER BY committed_at DESC LIMIT 1").first()
    return row[0], row[1]


@pytest.mark.parametrize("stage", ["after_ingest", "between_commits", "before_checks", "before_publish",
                                   "between_publishes"])
def test_job_killed_at_a_stage_is_repaired_by_a_rerun(spark, isolated, stage):
    """A step dies after ingest, between its two MERGEs, before its checks, before publishing
    or between the two fast-forwards; running the same step again gives the from-scratch
    result, ingesting once (the batch marker lives on accounts_all's `main`, which a step
    appends to directly: it is the input, never audited or branched)."""
    env, cfg = isolated, isolated.config
    rows = [record(cfg, k, "2022-01", 0, past_due_am=k) for k in (1, 2)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2022-01", "b1", rows, cfg)]))
    forward = write_batch(env.landing, "2022-02", "b2", [record(cfg, 1, "2022-02", 1, past_due_am=5),
                                                         record(cfg, 3, "2022-02", 1, past_due_am=6)], cfg)
    backfill = write_batch(env.landing, "2022-01", "b3", [record(cfg, 2, "2022-01", 2, past_due_am=9)], cfg)
    for batch, mode in ((forward, "forward"), (backfill, "backfill")):
        with pytest.raises(Crash):
            run_step(spark, env.tables, step_of(mode, [batch]), on_stage=crash_at(stage))
        assert spark._jsparkSession.sharedState().cacheManager().isEmpty()  # nothing left cached
        again = run_step(spark, env.tables, step_of(mode, [batch]))
        assert again.batches_skipped == [batch.batch_key]
        assert_equals_reference(spark, env)
        assert audit_refs(spark, env) == []
    assert spark.table(env.tables.accounts_all).count() == 5


def test_a_step_killed_between_its_fast_forwards_is_published_by_the_next_step(spark, isolated):
    """Killed after summary was published, the step's checked latest_summary is published by
    whichever step runs next, before that step reads the table (not only by its own re-run):
    every step may then take an account's latest row from summary. A step killed before
    publishing leaves nothing published, and its branches are dropped."""
    env, cfg = isolated, isolated.config
    rows = [record(cfg, k, "2022-01", 0, past_due_am=k) for k in (1, 2, 3)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2022-01", "b1", rows, cfg)]))
    late = write_batch(env.landing, "2022-01", "b2", [record(cfg, 1, "2022-01", 1, past_due_am=8)], cfg)
    with pytest.raises(Crash):
        run_step(spark, env.tables, step_of("backfill", [late]), on_stage=crash_at("between_publishes"))
    stale = spark.table(env.tables.latest_summary).where("cons_acct_key = 1").first()
    assert stale["past_due_am"] == 1  # summary published, latest_summary not yet
    other = write_batch(env.landing, "2022-01", "b3", [record(cfg, 2, "2022-01", 1, past_due_am=9)], cfg)
    run_step(spark, env.tables, step_of("backfill", [other]))
    assert_equals_reference(spark, env)
    assert audit_refs(spark, env) == []

    unchecked = write_batch(env.landing, "2022-01", "b4", [record(cfg, 3, "2022-01", 1, past_due_am=7)], cfg)
    with pytest.raises(Crash):
        run_step(spark, env.tables, step_of("backfill", [unchecked]), on_stage=crash_at("before_publish"))
    again = write_batch(env.landing, "2022-01", "b5", [record(cfg, 2, "2022-01", 2, past_due_am=4)], cfg)
    run_step(spark, env.tables, step_of("backfill", [again]))
    for table in (env.tables.summary, env.tables.latest_summary):  # account 3's unchecked rows: not published
        assert [r[0] for r in spark.table(table).where("cons_acct_key = 3").select("past_due_am").collect()] == [3]
    assert audit_refs(spark, env) == []


@pytest.mark.parametrize("named", [True, False])
def test_a_step_that_does_not_rewrite_latest_summary_decodes_only_its_forward_accounts_rows(
        spark, isolated, monkeypatch, named):
    """Classified against latest_summary's key and month, a step reads the table's wide rows of
    its forward-class accounts alone; a backfill account's latest row is the summary row the step
    read (its newest, or none within the step's window: account 1's newest month lies beyond the
    36 months its correction rewrites). Named and unnamed accounts alike; the step's 6 records
    are too few to rewrite latest_summary's 40 rows whole."""
    from emr_jobs import summarise as summarise_module

    env, cfg = isolated, isolated.config
    key, month = cfg.key_column, cfg.month_column
    written = generate(cfg, env.landing, 40, 40, "2020-01", 0, seed=11)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written)))
    newest = {r[0]: r[1] for r in spark.table(env.tables.latest_summary).select(key, month).collect()}
    assert newest[1] == newest[2] == "2023-04"  # account 1's is beyond 2020-02 + 35 months
    batches = [
        write_batch(env.landing, "2020-02", "late", [record(cfg, 1, "2020-02", 5, past_due_am=77)], cfg),
        write_batch(env.landing, "2021-06", "late", [record(cfg, 2, "2021-06", 5, past_due_am=66)], cfg),
        write_batch(env.landing, "2023-05", "next", [record(cfg, k, "2023-05", 5) for k in (3, 4)], cfg),
        write_batch(env.landing, "2021-01", "new", [record(cfg, 99, "2021-01", 5)], cfg),
    ]
    if not named:
        monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 1)
    read = []
    classify = summarise_module.classify

    def recorded(changes, latest, *args, **kwargs):
        read.append(sorted(latest.columns))
        return classify(changes, latest, *args, **kwargs)

    monkeypatch.setattr(summarise_module, "classify", recorded)
    report = run_step(spark, env.tables, step_of("backfill", batches))
    assert read == [sorted([key, month])]
    assert report.accounts_by_class == {"backfill": 2, "single_forward": 3}
    assert report.latest_rows_written == 4  # account 1's newest row (2023-04) is untouched
    assert_equals_reference(spark, env)


def test_readers_of_main_never_see_a_step_before_its_checks_pass(spark, isolated):
    env, cfg = isolated, isolated.config
    rows = [record(cfg, k, "2022-01", 0, past_due_am=k) for k in (1, 2)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2022-01", "b1", rows, cfg)]))
    before = actual_tables(spark, env)
    step = step_of("forward", [write_batch(env.landing, "2022-02", "b2", [record(cfg, 1, "2022-02", 1)], cfg)])
    seen = {}

    def look(stage):
        if stage in ("between_commits", "before_checks", "before_publish"):
            reader = spark.newSession()  # another session: its own SQL state, the same catalog
            seen[stage] = (actual_tables(reader, env), reader.table(f"{env.tables.summary}.branch_"
                                                                     f"{audit_branch(step.step_id)}").count())

    run_step(spark, env.tables, step, on_stage=look)
    assert {stage: main for stage, (main, _) in seen.items()} == dict.fromkeys(seen, before)
    assert [audited for _, audited in seen.values()] == [3, 3, 3]  # the rows exist, on the branch
    assert actual_tables(spark, env) != before
    assert_equals_reference(spark, env)


def test_a_failed_audit_leaves_main_untouched_and_keeps_the_rows_for_inspection(spark, isolated):
    from emr_jobs.checks import IntegrityError

    env, cfg = isolated, isolated.config
    rows = [record(cfg, k, "2022-01", 0, past_due_am=k) for k in (1, 2)]
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2022-01", "b1", rows, cfg)]))
    before, heads = actual_tables(spark, env), snapshots(spark, env)[1:]
    step = step_of("backfill", [write_batch(env.landing, "2022-01", "b2", [record(cfg, 2, "2022-01", 1)], cfg)])
    branch = audit_branch(step.step_id)

    def corrupt(stage):  # an engine defect, as the checks would meet it
        if stage == "before_checks":
            spark.sql(f"UPDATE {env.tables.summary}.branch_{branch} SET payment_history_grid = 'x' "
                      "WHERE cons_acct_key = 2")

    with pytest.raises(IntegrityError, match="payment_history_grid matches"):
        run_step(spark, env.tables, step, on_stage=corrupt)
    assert actual_tables(spark, env) == before and snapshots(spark, env)[1:] == heads
    tag = "failed_audit_" + step.step_id
    assert audit_refs(spark, env) == [("latest_summary", tag), ("summary", tag), ("summary_changes", tag)]
    kept = spark.read.option("tag", tag).table(env.tables.summary).where("cons_acct_key = 2").first()
    assert kept["payment_history_grid"] == "x"
    run_step(spark, env.tables, step)  # the fixed engine's re-run publishes
    assert_equals_reference(spark, env)


def test_a_dead_steps_audit_branch_is_dropped_by_the_next_step(spark, isolated):
    env, cfg = isolated, isolated.config
    b1 = write_batch(env.landing, "2022-01", "b1", [record(cfg, 1, "2022-01", 0)], cfg)
    first = step_of("initial", [b1])

    def die(stage):
        if stage == "before_publish":
            raise Crash(stage)

    with pytest.raises(Crash):
        run_step(spark, env.tables, first, on_stage=die)
    assert [name for _, name in audit_refs(spark, env)] == [audit_branch(first.step_id)] * 2
    assert snapshots(spark, env)[1:] == (None, None)
    b2 = write_batch(env.landing, "2022-02", "b2", [record(cfg, 1, "2022-02", 1)], cfg)
    run_step(spark, env.tables, step_of("initial", [b1, b2]))  # re-planned with a newer batch: another step
    assert audit_refs(spark, env) == []
    assert_equals_reference(spark, env)


def test_maintenance_compacts_and_expires_and_the_tables_stay_exact(spark, isolated, catalog_settings):
    """Backfills leave delete files; the maintenance step rewrites them away, expires old
    snapshots, keeps accounts_all's batch markers, and a re-run of a recent step still
    changes nothing."""
    from datetime import timedelta

    from emr_jobs.maintain import maintain, table_stats

    env, cfg = isolated, isolated.config
    months = ["2022-01", "2022-02", "2022-03"]
    batches = [write_batch(env.landing, m, "b0", [record(cfg, k, m, 0, past_due_am=k) for k in range(1, 9)], cfg)
               for m in months]
    run_step(spark, env.tables, step_of("initial", batches))
    fixes = []
    for n, month in enumerate(months, start=1):
        fix = write_batch(env.landing, month, f"fix{n}", [record(cfg, k, month, n, past_due_am=100 + k)
                                                          for k in (2, 5)], cfg)
        run_step(spark, env.tables, step_of("backfill", [fix]))
        fixes.append(fix)
    before = {t: table_stats(spark, t) for t in (env.tables.summary, env.tables.latest_summary)}
    assert before[env.tables.summary].delete_files > 0 and before[env.tables.latest_summary].delete_files > 0
    assert accounts_per_month_from_metadata(env, catalog_settings) == {m: 8 for m in months}  # deletes counted
    state, markers = actual_tables(spark, env), spark.table(f"{env.tables.accounts_all}.snapshots").count()

    report = maintain(spark, env.tables, datetime.now(timezone.utc) + timedelta(days=60))
    for name, table in (("summary", env.tables.summary), ("latest_summary", env.tables.latest_summary)):
        after = table_stats(spark, table)
        assert report[name]["before"]["delete_files"] == before[table].delete_files
        assert after.delete_files == 0 and report[name]["after"]["delete_files"] == 0
        assert after.snapshots < before[table].snapshots and report[name]["rewritten_data_files"] > 0
    assert actual_tables(spark, env) == state
    assert spark.table(f"{env.tables.accounts_all}.snapshots").count() == markers + 1  # manifests rewritten only
    assert_equals_reference(spark, env)
    assert accounts_per_month_from_metadata(env, catalog_settings) == {m: 8 for m in months}
    again = run_step(spark, env.tables, step_of("backfill", [fixes[-1]]))  # a redriven step after expiry
    assert again.batches_skipped == [fixes[-1].batch_key] and again.summary_rows_written == 0
    assert actual_tables(spark, env) == state


def accounts_per_month_from_metadata(env, catalog_settings):
    from datadominion.catalog import load_pyiceberg_catalog
    from datadominion.table_metadata import rows_per_month

    catalog = load_pyiceberg_catalog(catalog_settings)
    return rows_per_month(catalog, f"{env.config.namespace}.{env.config.destination_table}")


def test_a_maintain_step_runs_through_run_step_and_reports(spark, isolated):
    env, cfg = isolated, isolated.config
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2022-01", "b1",
                                                                [record(cfg, 1, "2022-01", 0)], cfg)]))
    report = run_step(spark, env.tables, Step("maintain", ("2026-11",), ()))
    assert set(report.maintenance) == {"summary", "latest_summary"} and "maintain" in report.stage_seconds
    assert_equals_reference(spark, env)
