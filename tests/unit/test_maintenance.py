"""When the Plan schedules maintenance (datadominion/maintenance.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from datadominion.config import Maintenance
from datadominion.maintenance import TableHealth, maintenance_reasons

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
SETTINGS = Maintenance(max_delete_files=10, max_data_files_per_month=4, max_snapshots=20, every_days=7)
HEALTHY = TableHealth("summary", data_files=24, delete_files=3, snapshots=12, months=12,
                      changed_at=NOW - timedelta(hours=1), created_at=NOW - timedelta(days=3), maintained_at=None)


def due(*tables: TableHealth) -> list:
    return maintenance_reasons(tables, SETTINGS, NOW)


def test_a_healthy_young_table_is_not_due():
    assert due(HEALTHY) == []
    assert due(replace(HEALTHY, changed_at=None, created_at=None, delete_files=99)) == []  # no data yet


def test_each_threshold_names_the_table_and_the_figure():
    assert due(replace(HEALTHY, delete_files=11)) == ["summary: 11 delete files > 10"]
    assert due(replace(HEALTHY, data_files=49)) == ["summary: 49 data files in 12 month(s) > 4 per month"]
    assert due(replace(HEALTHY, name="latest_summary", snapshots=21)) == ["latest_summary: 21 snapshots > 20"]


def test_thresholds_wait_a_day_after_maintenance_so_a_plan_cannot_loop_on_them():
    just = replace(HEALTHY, delete_files=11, maintained_at=NOW - timedelta(hours=2))
    assert due(just) == []
    assert due(replace(just, maintained_at=NOW - timedelta(days=1, minutes=1))) == ["summary: 11 delete files > 10"]


def test_the_schedule_maintains_a_changed_table_every_n_days_and_leaves_an_idle_one_alone():
    old = replace(HEALTHY, created_at=NOW - timedelta(days=30))
    assert due(old) == ["summary: changed and not maintained for 7 day(s)"]
    maintained = replace(old, maintained_at=NOW - timedelta(days=8))
    assert due(maintained) == ["summary: changed and not maintained for 7 day(s)"]
    idle = replace(maintained, changed_at=maintained.maintained_at - timedelta(minutes=1))
    assert due(idle) == []
    assert due(replace(old, maintained_at=NOW - timedelta(days=6))) == []
