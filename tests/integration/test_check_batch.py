"""`datadominion check-batch`: a producer's pre-delivery check finds every entry of the bad
input catalogue that a delivery would be rejected for, and passes a good batch."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from emr_jobs.summary_job import run_step
from localmode.check_batch import check_batch
from tests.support.batches import record, write_batch
from tests.support.steps import bad_cases, rule_of, snapshots, step_of

pytestmark = pytest.mark.spark
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def check(spark, env, location):
    return check_batch(str(location), spark, env.tables, env.config, NOW)


def folder(batch):
    return Path(batch.location.removeprefix("file://"))


def test_every_rule_the_job_applies_is_found_before_delivery(spark, isolated):
    env, cfg = isolated, isolated.config
    run_step(spark, env.tables, step_of("initial", [write_batch(env.landing, "2022-02", "seed",
                                                                [record(cfg, 1, "2022-02", 0)], cfg)]))
    before = snapshots(spark, env)
    good = write_batch(env.landing, "2022-02", "good", [record(cfg, 9, "2022-02", 50)], cfg)
    assert check(spark, env, folder(good)) == []
    for n, (rule, rows, schema) in enumerate(bad_cases(cfg)):
        bad = write_batch(env.landing, "2022-02", f"bad{n}", rows, cfg, schema)
        [problem] = check(spark, env, folder(bad))
        assert rule_of(problem) == rule and f"batch {bad.batch_key}" in problem
    assert snapshots(spark, env) == before  # nothing written


@pytest.mark.parametrize("files, words", [
    ({}, "has no .parquet objects"),
    ({"part-0.parquet": b""}, "zero-byte Parquet objects"),
    ({"part-0.parquet": b"id,balance\n1,2\n"}, "is not a Parquet file"),
    ({"notes.csv": b"a,b"}, "unexpected non-Parquet objects"),
    ({"sub/part-0.parquet": b"PAR1"}, "unexpected sub-folders"),
])
def test_register_level_problems_are_found_in_a_folder_outside_the_landing_layout(spark, isolated, tmp_path,
                                                                                  files, words):
    folder = tmp_path / "staging" / "rpt_as_of_mo=2022-02" / "b1"
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    [problem] = check(spark, isolated, folder)
    assert words in problem and "2022-02/b1" in problem


def test_layout_month_and_unreadable_files_are_named(spark, isolated, tmp_path):
    env, cfg = isolated, isolated.config
    good = write_batch(env.landing, "2022-02", "ok", [record(cfg, 1, "2022-02")], cfg)
    assert "does not follow accounts_all/rpt_as_of_mo=YYYY-MM/<batch_id>/_SUCCESS" in \
        check(spark, env, folder(good).parent)[0]  # the month folder, not a batch folder
    assert "is in the future" in check(spark, env, folder(write_batch(env.landing, "2027-06", "b1",
                                                                [record(cfg, 1, "2027-06")], cfg)))[0]
    assert "month 13" in check(spark, env, tmp_path / "rpt_as_of_mo=2022-13" / "b1")[0]
    part = folder(good) / "part-00000.parquet"
    data = part.read_bytes()
    part.write_bytes(data[:4] + b"\x00" * (len(data) - 8) + data[-4:])  # valid magic, broken pages
    assert rule_of(check(spark, env, folder(good))[0]) == "readable Parquet"


def test_an_s3_prefix_is_checked_the_same_way(spark, isolated, aws):
    env, cfg = isolated, isolated.config
    good = write_batch(env.landing, "2022-02", "s3good", [record(cfg, 1, "2022-02")], cfg)
    bad = write_batch(env.landing, "2022-02", "s3bad", [record(cfg, None, "2022-02")], cfg)
    for batch in (good, bad):
        for file in folder(batch).iterdir():
            aws.s3.put_object(Bucket=aws.landing, Key=f"accounts_all/rpt_as_of_mo=2022-02/{batch.batch_id}/"
                                                       f"{file.name}", Body=file.read_bytes())
    assert check(spark, env, f"s3://{aws.landing}/accounts_all/rpt_as_of_mo=2022-02/s3good/") == []
    [problem] = check(spark, env, f"s3://{aws.landing}/accounts_all/rpt_as_of_mo=2022-02/s3bad")
    assert rule_of(problem) == "non-null cons_acct_key"
