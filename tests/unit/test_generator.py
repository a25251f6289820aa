from datetime import datetime, timezone

import pyarrow.parquet as pq

from datadominion.schema import arrow_schema
from localmode.generator import generate, rating_for_dpd, write_corrections


def _read(folder):
    return pq.ParquetFile(next(folder.glob("*.parquet"))).read()


def test_layout_schema_rows(tmp_path, pipeline_config):
    written = generate(pipeline_config, tmp_path, accounts=50, months=4, start_month="2023-11", seed=1)
    assert [w.ref.month for w in written] == ["2023-11", "2023-12", "2024-01", "2024-02"]
    for w in written:
        assert w.path == tmp_path / "accounts_all" / f"rpt_as_of_mo={w.ref.month}" / w.ref.batch_id
        assert (w.path / "_SUCCESS").stat().st_size == 0
        table = _read(w.path)
        assert table.schema.equals(arrow_schema(pipeline_config.source_types))
        assert table.num_rows == w.rows == 50
        assert set(table.column("rpt_as_of_mo").to_pylist()) == {w.ref.month}


def test_values_are_plausible(tmp_path, pipeline_config):
    written = generate(pipeline_config, tmp_path, accounts=300, months=12, start_month="2022-01", seed=5)
    rows = [r for w in written for r in _read(w.path).to_pylist()]
    for r in rows:
        assert r["acct_bal_am"] <= r["acct_credit_ext_am"]
        assert r["acct_pymt_stat_cd"] == str(rating_for_dpd([r["days_past_due_ct_4in"]])[0])
        assert (r["asset_class_cd_4in"] == "S") == (r["days_past_due_ct_4in"] == 0)
        assert (r["past_due_am"] > 0) <= (r["days_past_due_ct_4in"] > 0)
    assert any(r["days_past_due_ct_4in"] > 0 for r in rows)


def test_gap_percentage(tmp_path, pipeline_config):
    written = generate(pipeline_config, tmp_path, accounts=400, months=10, start_month="2020-01", gap_pct=10, seed=3)
    kept = sum(w.rows for w in written) / 4000
    assert 0.87 < kept < 0.93


def test_deterministic_for_a_seed(tmp_path, pipeline_config):
    a = generate(pipeline_config, tmp_path / "a", accounts=30, months=3, start_month="2021-01", gap_pct=20, seed=9)
    b = generate(pipeline_config, tmp_path / "b", accounts=30, months=3, start_month="2021-01", gap_pct=20, seed=9)
    c = generate(pipeline_config, tmp_path / "c", accounts=30, months=3, start_month="2021-01", gap_pct=20, seed=10)
    assert [_read(x.path).to_pylist() for x in a] == [_read(x.path).to_pylist() for x in b]
    assert [_read(x.path).to_pylist() for x in a] != [_read(x.path).to_pylist() for x in c]


def test_corrections_add_deltas_with_newer_base_ts(tmp_path, pipeline_config):
    generate(pipeline_config, tmp_path, accounts=5, months=3, start_month="2024-01", seed=2)
    original = {r["cons_acct_key"]: r for r in _read(tmp_path / "accounts_all" / "rpt_as_of_mo=2024-02"
                                                     / "gen-s2-2024-02").to_pylist()}
    ts = datetime(2025, 1, 1, tzinfo=timezone.utc)
    [batch] = write_corrections(pipeline_config, tmp_path, [1, 2], ["2024-02"], 10_000, 30, ts)
    for r in _read(batch.path).to_pylist():
        o = original[r["cons_acct_key"]]
        assert r["past_due_am"] == o["past_due_am"] + 10_000
        assert r["days_past_due_ct_4in"] == o["days_past_due_ct_4in"] + 30
        assert r["base_ts"] > o["base_ts"]
        assert r["acct_bal_am"] == o["acct_bal_am"]
