"""The DuckDB reference (tests/support/duckdb_reference.py) agrees with the Spark engine:
a second, independent implementation of the forward month and of the from-scratch recompute,
the one `make bench` times against the engine."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from datadominion.catalog import load_pyiceberg_catalog
from emr_jobs.summary_job import run_step
from localmode.generator import generate
from tests.support import duckdb_reference as ddb
from tests.support.steps import as_step_batches, step_of

pytestmark = pytest.mark.spark


def _rows(table, config, month=None):
    rows = table.to_pylist()
    key, month_col = config.key_column, config.month_column
    return sorted((r for r in rows if month is None or r[month_col] == month), key=lambda r: (r[key], r[month_col]))


def test_duckdb_forward_month_and_recompute_equal_the_engine(spark, isolated, catalog_settings):
    env, cfg = isolated, isolated.config
    catalog = load_pyiceberg_catalog(catalog_settings)

    def scan(table):
        return catalog.load_table(table.split(".", 1)[1]).scan().to_arrow()

    written = generate(cfg, env.landing, 40, 7, "2023-11", 15, seed=5)
    run_step(spark, env.tables, step_of("initial", as_step_batches(written[:-1])))
    latest_before = scan(env.tables.latest_summary)
    run_step(spark, env.tables, step_of("forward", as_step_batches(written[-1:])))
    new_month = pq.read_table(written[-1].path)
    db = ddb.connect()
    db.register("new_records", new_month)
    db.register("latest", latest_before)
    forward = db.sql(ddb.forward_sql(cfg, "new_records", "latest")).to_arrow_table()
    engine_summary = scan(env.tables.summary)
    assert forward.num_rows > 30
    assert _rows(forward, cfg) == _rows(engine_summary, cfg, written[-1].ref.month)
    db.register("accounts_all", scan(env.tables.accounts_all))
    recomputed = db.sql(ddb.recompute_sql(cfg, "accounts_all")).to_arrow_table()
    assert _rows(recomputed, cfg) == _rows(engine_summary, cfg)
