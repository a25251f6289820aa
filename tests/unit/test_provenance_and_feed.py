"""Provenance (datadominion/provenance.py) and the feed's reading side, without Spark."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from datadominion.change_feed import SinceError, amendment_event, describe_event, resolve_since
from datadominion.config import ColumnTransformation
from datadominion.ledger import StepRecord
from datadominion.provenance import UNKNOWN_BATCH, clean, explain
from tests.support.batches import record

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_clean_follows_the_configured_rules():
    allowed = ColumnTransformation(column="c", rule="allowed_values", values=["0", "1"], replacement=None)
    assert clean("1", allowed, "string") == "1" and clean("9", allowed, "string") is None
    ranged = ColumnTransformation(column="c", rule="range", min=0, max=10, replacement=-1)
    assert clean(5, ranged, "int") == 5 and clean(-3, ranged, "int") == -1 and clean(11, ranged, "int") == -1
    assert clean(None, ranged, "int") is None
    assert clean(99, ColumnTransformation(column="c", rule="range", max=10, replacement="x"), "int") is None


def _row(config, month, records_by_month):
    """A summary row as the engine would write it, built by hand from the newest records."""
    h = config.history_length
    from datadominion.months import add_months

    row = {"cons_acct_key": 7, "rpt_as_of_mo": month}
    for rc in config.rolling_columns:
        src = {v: k for k, v in config.columns.items()}[rc.mapper_column]
        row[rc.name] = [None] * h
        for i in range(h):
            r = records_by_month.get(add_months(month, -i))
            row[rc.name][i] = r[src] if r else None
    for rc in config.rolling_columns:
        if rc.mapper_column == "past_due_am":
            row[rc.name] = [None if v is None or v < 0 else v for v in row[rc.name]]
    row["payment_history_grid"] = "".join("?" if v is None else v for v in row["payment_rating_cd_history"])
    return row


def test_explain_names_the_supplying_and_superseded_records_and_agrees_with_a_correct_row(pipeline_config):
    cfg = pipeline_config
    old = dict(record(cfg, 7, "2024-03", 0, past_due_am=5), source_batch="2024-03/b1")
    new = dict(record(cfg, 7, "2024-03", 9, past_due_am=50), source_batch="2024-03/fix")
    feb = dict(record(cfg, 7, "2024-02", 0, past_due_am=-4))  # ingested before batches were kept; cleaned to NULL
    row = _row(cfg, "2024-04", {"2024-03": new, "2024-02": feb})
    found = explain(7, "2024-04", [old, new, feb], row, cfg)
    assert found.agrees
    p0, p1, p2 = found.positions[:3]
    assert p0.month == "2024-04" and p0.supplied_by is None and p0.expected["payment_history_grid"] == "?"
    assert (p1.supplied_by.batch, p1.superseded[0].batch) == ("2024-03/fix", "2024-03/b1")
    assert p1.expected["past_due_am_history"] == 50
    assert p2.supplied_by.batch == UNKNOWN_BATCH and p2.expected["past_due_am_history"] is None


def test_explain_reports_each_position_where_the_table_differs(pipeline_config):
    cfg = pipeline_config
    rec = dict(record(cfg, 7, "2024-03", 0, past_due_am=5), source_batch="2024-03/b1")
    row = _row(cfg, "2024-04", {"2024-03": rec})
    row["past_due_am_history"][1] = 6
    row["payment_history_grid"] = "?1" + row["payment_history_grid"][2:]
    found = explain(7, "2024-04", [rec], row, cfg)
    assert not found.agrees
    assert [(p.index, p.differs) for p in found.positions if p.differs] == [
        (1, ["past_due_am_history", "payment_history_grid"])]
    missing = explain(7, "2024-04", [rec], None, cfg)
    assert not missing.agrees and not missing.row_found


def test_since_is_a_time_or_a_known_step():
    step = StepRecord("abcdef0123", "run", "backfill", ("2024-01",), T0 + timedelta(hours=2), "DONE")
    again = StepRecord("abcdef0123", "run2", "backfill", ("2024-01",), T0 + timedelta(hours=5), "DONE")
    assert resolve_since("abcdef0123", [step]) == T0 + timedelta(hours=2)
    assert resolve_since("abcdef01", [step, again]) == T0 + timedelta(hours=5)  # the newest run of the step
    other = StepRecord("abcdef0199", "run", "rerun", ("2024-01",), T0, "DONE")
    with pytest.raises(SinceError, match="several step ids"):
        resolve_since("abcdef01", [step, other])
    assert resolve_since("2025-01-01", []) == T0
    assert resolve_since("2025-01-01T01:00:00+01:00", []) == T0
    with pytest.raises(SinceError, match="'yesterday' is neither an ISO date/time"):
        resolve_since("yesterday", [step])


def test_a_step_announces_one_event_only_when_it_changed_rows():
    report = {"changes": {"records": 3, "by_kind": {"corrected": 1, "history": 2}, "table": "db.summary_changes",
                          "snapshot_id": 42}}
    event = amendment_event(report, "s1", "backfill", ["2024-01"], "prod")
    assert event["detail"]["records"] == 3 and event["detail"]["snapshot_id"] == 42
    assert describe_event(event) == ("amended history: 3 change record(s) (corrected 1, history 2) from step s1 "
                                     "in db.summary_changes snapshot 42")
    assert amendment_event({"changes": {"records": 0}}, "s1", "rerun", ["2024-01"]) is None
    assert amendment_event({}, "s1", "forward", ["2024-01"]) is None
