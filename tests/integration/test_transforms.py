"""Each array transform on a tiny DataFrame, so a failure names the transform that broke
(the engine tests and the oracle only say that the tables differ)."""

from __future__ import annotations

from datetime import datetime

import pytest

from datadominion.config import parse_pipeline_config
from emr_jobs import transforms as tx

H = 4
CONFIG = parse_pipeline_config({
    "source_table": "a", "destination_table": "s", "latest_history_table": "l", "history_length": H,
    "source_schema": [{"name": "cons_acct_key", "type": "bigint"}, {"name": "rpt_as_of_mo", "type": "string"},
                      {"name": "base_ts", "type": "timestamp"}, {"name": "amt", "type": "int"},
                      {"name": "rating", "type": "string"}],
    "columns": {"cons_acct_key": "cons_acct_key", "rpt_as_of_mo": "rpt_as_of_mo", "base_ts": "base_ts",
                "amt": "amt", "rating": "rating"},
    "rolling_columns": [{"name": "amt_history", "mapper_column": "amt"},
                        {"name": "rating_history", "mapper_column": "rating"}],
    "grid_columns": [{"name": "grid", "mapper_rolling_column": "rating_history", "placeholder": "?"}],
})
TS = datetime(2024, 1, 1)
SCALARS = "cons_acct_key bigint, rpt_as_of_mo string, base_ts timestamp, amt int, rating string"


def mi(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:]) - 1


def by_key(rows):
    return {r["cons_acct_key"]: r for r in rows}


@pytest.mark.spark
def test_shift_forward_prepends_the_month_and_pads_gaps_with_nulls(spark):
    old_amt, old_rating = [10, 9, 8, 7], ["1", "0", None, "0"]
    rows = spark.createDataFrame([
        (1, "2024-05", TS, 11, "2", mi("2024-05"), None, None, None),  # a new account
        (2, "2024-05", TS, 11, "2", mi("2024-05"), mi("2024-04"), old_amt, old_rating),  # the next month
        (3, "2024-05", TS, 11, "2", mi("2024-05"), mi("2024-03"), old_amt, old_rating),  # one month missing
        (4, "2024-05", TS, 11, "2", mi("2024-05"), mi("2023-12"), old_amt, old_rating),  # gap >= H
    ], f"{SCALARS}, _mi int, _lmi int, _old_amt_history array<int>, _old_rating_history array<string>")
    out = by_key(tx.shift_forward(rows, CONFIG).collect())
    assert out[1]["amt_history"] == [11, None, None, None] and out[1]["grid"] == "2???"
    assert out[2]["amt_history"] == [11, 10, 9, 8] and out[2]["rating_history"] == ["2", "1", "0", None]
    assert out[2]["grid"] == "210?"
    assert out[3]["amt_history"] == [11, None, 10, 9]
    assert out[4]["amt_history"] == [11, None, None, None]


@pytest.mark.spark
def test_histories_from_points_reverse_the_window_ending_at_each_target(spark):
    targets = spark.createDataFrame([(1, "2024-03", TS, 3, "0", mi("2024-03")),
                                     (1, "2024-05", TS, 5, "1", mi("2024-05"))], f"{SCALARS}, _mi int")
    points = spark.createDataFrame([(1, mi(m), (v, r)) for m, v, r in (
        ("2024-01", 1, "0"), ("2024-03", 3, "0"), ("2024-04", 4, None), ("2024-05", 5, "1"))],
        "cons_acct_key bigint, _mi int, _vals struct<amt_history:int, rating_history:string>")
    out = {r["rpt_as_of_mo"]: r for r in tx.histories_from_points(targets, points, CONFIG).collect()}
    assert out["2024-03"]["amt_history"] == [3, None, 1, None]  # 2024-02 and 2023-12 have no record
    assert out["2024-05"]["amt_history"] == [5, 4, 3, None]
    assert out["2024-05"]["grid"] == "1?0?"


@pytest.mark.spark
def test_points_from_arrays_put_position_i_at_month_minus_i(spark):
    latest = spark.createDataFrame([(1, mi("2024-05"), [5, None, 3, 2], ["1", None, "0", "0"]),
                                    (2, None, None, None)],
                                   "cons_acct_key bigint, _lmi int, _old_amt_history array<int>, "
                                   "_old_rating_history array<string>")
    points = sorted((r["_mi"], r["_vals"]["amt_history"]) for r in tx.points_from_arrays(latest, CONFIG).collect())
    assert points == [(mi("2024-02"), 2), (mi("2024-03"), 3), (mi("2024-04"), None), (mi("2024-05"), 5)]


@pytest.mark.spark
def test_grids_put_one_placeholder_per_month_without_a_value(spark):
    rows = spark.createDataFrame([(0, ["1", None, "D", None]), (1, [None, None]), (2, []), (3, None)],
                                 "n int, rating_history array<string>")
    grids = {r["n"]: r["grid"] for r in tx.with_grids(rows, CONFIG).collect()}
    assert grids == {0: "1?D?", 1: "??", 2: "", 3: ""}  # a NULL array: empty, as the row rules expect


def test_a_small_step_runs_without_adaptive_execution_interpreted_and_the_session_gets_its_settings_back(spark):
    """AQE re-optimises the whole plan after each query stage and generated code costs a Janino
    compile per new plan (seconds of driver time per step on the wide summary plans): a step of
    a few records runs without either (its scans of whole partitions compiled), a large one with
    both, and whatever a step set is undone when it ends, failed or not."""
    from emr_jobs.codegen import CODEGEN_FACTORY, WHOLE_STAGE_CODEGEN, whole_partition_scan
    from emr_jobs.summarise import (
        ADAPTIVE,
        INTERPRET_SMALL_STEPS,
        INTERPRETED_UNNAMED_RECORDS,
        STEP_SETTINGS,
        Holding,
        StepReads,
        compile_many_unnamed,
        size_step,
        step_settings,
    )

    before = {name: spark.conf.get(name, None) for name in STEP_SETTINGS}
    one_partition = CONFIG.shuffle_partitions.rows_per_partition
    codegen = (WHOLE_STAGE_CODEGEN, CODEGEN_FACTORY)
    with pytest.raises(RuntimeError, match="the step failed"), step_settings(spark):
        assert size_step(spark, 35, CONFIG) == Holding(True, 4)  # the local session caps partitions at 4
        assert (spark.conf.get(ADAPTIVE), spark.conf.get(CODEGEN_FACTORY)) == ("false", "NO_CODEGEN")
        with whole_partition_scan(spark, whole=False):  # a read of named accounts: interpreted
            assert [spark.conf.get(name) for name in codegen] == ["false", "NO_CODEGEN"]
        with whole_partition_scan(spark):  # a scan of whole partitions: compiled, then interpreted again
            assert [spark.conf.get(name) for name in codegen] == ["true", "FALLBACK"]
        assert [spark.conf.get(name) for name in codegen] == ["false", "NO_CODEGEN"]
        few, many = INTERPRETED_UNNAMED_RECORDS, INTERPRETED_UNNAMED_RECORDS + 1
        named, unnamed = StepReads(spark.range(1), spark.range(1), (1, 2)), StepReads(spark.range(1), spark.range(1))
        compile_many_unnamed(spark, Holding(True, 4), named, many)  # it names its accounts: interpreted
        compile_many_unnamed(spark, Holding(True, 4), unnamed, few)  # few records: interpreted but for its scans
        assert [spark.conf.get(name) for name in codegen] == ["false", "NO_CODEGEN"]
        compile_many_unnamed(spark, Holding(True, 4), unnamed, many)  # many records, unnamed: compiled throughout
        assert [spark.conf.get(name) for name in codegen] == ["true", "FALLBACK"]
        spark.conf.set(WHOLE_STAGE_CODEGEN, "false")  # the next step starts from the session's settings
        spark.conf.set(CODEGEN_FACTORY, "FALLBACK")
        assert size_step(spark, one_partition + 1, CONFIG).small_step is False
        assert (spark.conf.get(ADAPTIVE), spark.conf.get(CODEGEN_FACTORY)) == ("true", "FALLBACK")
        with whole_partition_scan(spark):  # a compiled step's scans are left as they are
            assert [spark.conf.get(name) for name in codegen] == ["false", "FALLBACK"]
        spark.conf.set(INTERPRET_SMALL_STEPS, "false")
        assert size_step(spark, one_partition, CONFIG).small_step is True
        assert (spark.conf.get(ADAPTIVE), spark.conf.get(CODEGEN_FACTORY)) == ("false", "FALLBACK")
        raise RuntimeError("the step failed")
    spark.conf.unset(INTERPRET_SMALL_STEPS)
    assert {name: spark.conf.get(name, None) for name in before} == before
