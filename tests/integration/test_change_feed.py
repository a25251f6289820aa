"""The amended-history feed on real Spark + Iceberg: a backfill step's change records list
exactly the summary rows that differ between before and after the step, with what changed."""

from __future__ import annotations

import pytest

from datadominion.steps import Step
from emr_jobs import transforms as tx
from emr_jobs.summarise import current_snapshot
from emr_jobs.summary_job import run_step
from tests.support.batches import record, write_batch
from tests.support.steps import Crash, actual_tables, assert_equals_reference, audit_refs, crash_at, step_of

pytestmark = pytest.mark.spark


def change_records(spark, env):
    key, month = env.config.key_column, env.config.month_column
    return [r.asDict(recursive=True) for r in spark.table(env.tables.changes).orderBy(key, month).collect()]


def _initial_and_forward(spark, env):
    """Accounts 1-4 over 2020-01..2020-06 (account 2 without 2020-04), then a forward month."""
    cfg = env.config
    rows = [record(cfg, k, f"2020-0{m}", 0, past_due_am=10 * k + m) for k in (1, 2, 3, 4) for m in range(1, 7)
            if (k, m) != (2, 4)]
    batches = []
    for m in range(1, 7):
        month = f"2020-0{m}"
        batches.append(write_batch(env.landing, month, "b0", [r for r in rows if r["rpt_as_of_mo"] == month], cfg))
    run_step(spark, env.tables, step_of("initial", batches))
    forward = write_batch(env.landing, "2020-07", "f1", [record(cfg, k, "2020-07", 0) for k in (1, 2, 3, 4)], cfg)
    report = run_step(spark, env.tables, step_of("forward", [forward]))
    assert report.changes == {} and change_records(spark, env) == []


def _late_set(env):
    """Corrections, a gap fill, a new account backfilled into three past months, a stale
    record and a double correction in one batch."""
    cfg = env.config
    return step_of("backfill", [
        write_batch(env.landing, "2020-03", "late1", [
            record(cfg, 1, "2020-03", 5, past_due_am=999, acct_pymt_stat_cd="3"),  # correction
            record(cfg, 9, "2020-03", 1, past_due_am=7),  # new account
            record(cfg, 4, "2020-03", 2, past_due_am=400), record(cfg, 4, "2020-03", 3, past_due_am=401),
        ], cfg),
        write_batch(env.landing, "2020-04", "late2", [record(cfg, 2, "2020-04", 1, past_due_am=24)], cfg),  # gap
        write_batch(env.landing, "2020-02", "late3", [
            record(cfg, 9, "2020-02", 1, past_due_am=6),
            record(cfg, 3, "2020-02", -5, past_due_am=-1),  # stale: older than the summarised record
        ], cfg),
        write_batch(env.landing, "2020-05", "late4", [record(cfg, 9, "2020-05", 1, past_due_am=8)], cfg),
    ])


def _differences(before, after):
    return {k: (before.get(k), row) for k, row in after.items() if before.get(k) != row}


@pytest.mark.parametrize("reads", ["accounts named", "accounts not named, nothing broadcast"])
def test_a_backfill_step_records_exactly_the_rows_it_changed_and_what_changed(spark, isolated, monkeypatch, reads):
    """Whether the step reads its window's rows whole (its accounts named) or rebuilds them from
    their scalars (not named), the previous rows it records are the stored ones; and whether its
    rows meet their causes through a broadcast of the accounts' records or (as with accounts too
    many to broadcast) a shuffle."""
    if reads != "accounts named":
        monkeypatch.setattr(tx, "NAMED_KEYS_LIMIT", 0)
        monkeypatch.setattr(tx, "BROADCAST_ROWS", 0)
    env, cfg = isolated, isolated.config
    _initial_and_forward(spark, env)
    before, _ = actual_tables(spark, env)
    step = _late_set(env)
    report = run_step(spark, env.tables, step)
    after, _ = actual_tables(spark, env)
    assert_equals_reference(spark, env)
    differ = _differences(before, after)
    records = change_records(spark, env)
    assert sorted((r["cons_acct_key"], r["rpt_as_of_mo"]) for r in records) == sorted(differ)
    assert not any(k[0] == 3 for k in differ)  # the stale record changed nothing
    batches = {b.month: b.batch_key for b in step.batches}
    scalars = [c for c in cfg.summary_scalar_types if c not in (cfg.key_column, cfg.month_column)]
    for r in records:
        old, new = differ[(r["cons_acct_key"], r["rpt_as_of_mo"])]
        assert r["step_id"] == step.step_id and r["step_mode"] == "backfill"
        cause_months = [c["month"] for c in r["causes"]]
        assert cause_months and all(batches[c["month"]] == c["batch"] for c in r["causes"])
        assert r["kind"] == ("added" if old is None else "corrected" if r["rpt_as_of_mo"] in cause_months
                             else "history")
        if old is None:
            assert r["scalar_changes"] == [] and r["history_changes"] == []
            continue
        assert {c["column"]: (c["old"], c["new"]) for c in r["scalar_changes"]} == {
            c: (str(old[c]), str(new[c])) for c in scalars if old[c] != new[c]}
        assert {h["column"]: h["positions"] for h in r["history_changes"]} == {
            rc.name: [i for i in range(cfg.history_length) if old[rc.name][i] != new[rc.name][i]]
            for rc in cfg.rolling_columns if old[rc.name] != new[rc.name]}
    kinds = {(r["cons_acct_key"], r["rpt_as_of_mo"]): r["kind"] for r in records}
    assert kinds[(1, "2020-03")] == "corrected" and kinds[(1, "2020-04")] == "history"
    assert kinds[(2, "2020-04")] == "added" and kinds[(9, "2020-02")] == "added"
    double = next(r for r in records if (r["cons_acct_key"], r["rpt_as_of_mo"]) == (4, "2020-03"))
    assert {c["column"]: c["new"] for c in double["scalar_changes"]}["past_due_am"] == "401"
    assert report.changes["records"] == len(records)
    assert report.changes["by_kind"] == {k: sum(1 for v in kinds.values() if v == k) for k in set(kinds.values())}
    assert report.changes["snapshot_id"] == current_snapshot(spark, env.tables.changes)


def test_a_rerun_that_changes_nothing_records_nothing(spark, isolated):
    env = isolated
    _initial_and_forward(spark, env)
    report = run_step(spark, env.tables, Step("rerun", ("2020-03",), ()))
    assert report.summary_rows_written == 0 and report.changes["records"] == 0
    assert change_records(spark, env) == []


@pytest.mark.parametrize("stage", ["between_commits", "before_publish", "between_publishes"])
def test_a_step_killed_while_publishing_leaves_each_change_recorded_once(spark, isolated, stage):
    """Killed after summary was published but before its change records, the next step
    finishes that publish: its own re-run would find nothing left to change."""
    env = isolated
    _initial_and_forward(spark, env)
    before, _ = actual_tables(spark, env)
    step = _late_set(env)

    with pytest.raises(Crash):
        run_step(spark, env.tables, step, on_stage=crash_at(stage))
    again = run_step(spark, env.tables, step)
    if stage == "between_publishes":  # summary holds every row; the new account's, not in latest, are compared too
        assert again.summary_rows_written == 0
    after, _ = actual_tables(spark, env)
    keys = [(r["cons_acct_key"], r["rpt_as_of_mo"]) for r in change_records(spark, env)]
    assert sorted(keys) == sorted(_differences(before, after))
    assert audit_refs(spark, env) == []
    assert_equals_reference(spark, env)


def test_explain_agrees_with_the_table_for_every_position_and_catches_a_wrong_value(spark, isolated,
                                                                                    catalog_settings):
    from datadominion.catalog import load_pyiceberg_catalog
    from datadominion.provenance import read_explanation

    env, cfg = isolated, isolated.config
    _initial_and_forward(spark, env)
    step = _late_set(env)
    run_step(spark, env.tables, step)
    catalog = load_pyiceberg_catalog(catalog_settings)
    namespace = cfg.namespace

    def explained(account, month):
        return read_explanation(catalog, cfg, lambda table: f"{namespace}.{table}", account, month)

    rows = sorted(actual_tables(spark, env)[0])
    for account, month in rows[::3] + [(1, "2020-04"), (9, "2020-05"), (4, "2020-03")]:
        found = explained(account, month)
        assert found.agrees, (account, month, [p for p in found.positions if p.differs])
    corrected = explained(1, "2020-04").positions[1]  # 2020-03 of account 1: the correction superseded b0
    assert corrected.supplied_by.batch == "2020-03/late1" and [s.batch for s in corrected.superseded] == ["2020-03/b0"]
    double = explained(4, "2020-03").positions[0]  # both records of the double correction are in one batch
    assert double.expected["past_due_am_history"] == 401 and len(double.superseded) == 2
    spark.sql(f"UPDATE {env.tables.summary} SET past_due_am_history = concat(array(-7), "
              f"slice(past_due_am_history, 2, 35)) WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2020-05'")
    wrong = explained(2, "2020-05")
    assert not wrong.agrees and [(p.index, p.differs) for p in wrong.positions if p.differs] == [
        (0, ["past_due_am_history"])]
