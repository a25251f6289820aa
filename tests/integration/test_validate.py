"""`validate`'s comparison with a from-scratch recomputation (emr_jobs/recompute.py) passes the
tables a step wrote and counts, as a multiset difference, each way they can be wrong."""

from __future__ import annotations

import pytest

from emr_jobs.recompute import validate_tables
from localmode.generator import generate
from tests.support.steps import as_step_batches, summarised_by_one_step
from tests.support.tables import set_back_after

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def summarised_once(spark, catalog_settings, pipeline_config, tmp_path_factory):
    """Six accounts over three months, summarised by one step for every test here."""
    def land(env):
        return as_step_batches(generate(env.config, env.landing, 6, 3, "2024-01", 0, seed=11))

    return summarised_by_one_step(spark, catalog_settings, pipeline_config,
                                  tmp_path_factory.mktemp("validate") / "landing", land)


@pytest.fixture
def summarised(spark, summarised_once):
    """The step's tables for one test, both set back to their heads after it."""
    with set_back_after(spark, summarised_once.tables.summary, summarised_once.tables.latest_summary):
        yield summarised_once


def test_validate_passes_the_tables_a_step_wrote(spark, summarised):
    validation = validate_tables(spark, summarised.tables)
    assert validation.problems == []
    assert validation.rows == {summarised.tables.summary: 6 * 3, summarised.tables.latest_summary: 6}


@pytest.mark.parametrize("table, corruption, account, extra, missing", [
    ("summary", "UPDATE {t} SET past_due_am = past_due_am + 1 WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2024-02'",
     2, 1, 1),
    ("summary", "INSERT INTO {t} SELECT * FROM {t} WHERE cons_acct_key = 3 AND rpt_as_of_mo = '2024-01'", 3, 1, 0),
    ("summary", "DELETE FROM {t} WHERE cons_acct_key = 4", 4, 0, 3),
    ("latest_summary", "UPDATE {t} SET rpt_as_of_mo = '2024-02' WHERE cons_acct_key = 5", 5, 1, 1),
])
def test_validate_counts_each_row_the_tables_hold_wrongly(spark, summarised, table, corruption, account, extra,
                                                          missing):
    name = getattr(summarised.tables, table)
    spark.sql(corruption.format(t=name))
    validation = validate_tables(spark, summarised.tables)
    problems = validation.problems
    assert validation.rows[name] == spark.table(name).count()  # as the table holds them, wrong rows too
    assert problems[0] == (f"{name}: {extra} row(s) differ from or are absent in the recomputation, "
                           f"{missing} recomputed row(s) absent or different in the table")
    examples = problems[1:]  # each row named by its (account, month)
    assert len(examples) == extra + missing and all(f"({account}, " in line for line in examples)
