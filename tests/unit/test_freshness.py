"""Freshness and coverage expectations (datadominion/freshness.py)."""

from __future__ import annotations

from datetime import date

from datadominion.freshness import check_freshness, expected_month

ROWS = {"2026-08": 1000, "2026-09": 1010, "2026-10": 995}


def test_month_m_is_due_by_day_d_of_m_plus_one():
    assert expected_month(date(2026, 11, 14), 15) == "2026-09"
    assert expected_month(date(2026, 11, 15), 15) == "2026-10"
    assert expected_month(date(2027, 1, 20), 15) == "2026-12"


def test_a_month_on_time_and_a_small_dip_are_fine():
    assert check_freshness(ROWS, date(2026, 11, 27), 15, 10.0).problems == []
    assert check_freshness({}, date(2026, 11, 27), 15, 10.0).problems == []  # nothing summarised yet


def test_an_overdue_month_names_the_month_the_day_and_the_newest():
    fresh = check_freshness({"2026-08": 1000, "2026-09": 1010}, date(2026, 11, 27), 15, 10.0)
    assert fresh.overdue_month == "2026-10"
    assert fresh.problems == ["month 2026-10 was expected by day 15 of the month after it and is not summarised "
                              "(newest: 2026-09)"]
    assert check_freshness({"2026-08": 1000, "2026-09": 1010}, date(2026, 11, 14), 15, 10.0).problems == []


def test_a_recent_drop_in_accounts_names_both_months_and_the_figures():
    fresh = check_freshness(dict(ROWS, **{"2026-10": 700}), date(2026, 11, 27), 15, 10.0)
    assert fresh.problems == ["month 2026-10 has 700 accounts, 30.7% fewer than 2026-09 (1010); more than the "
                              "expected 10%"]
    assert fresh.worst_drop_pct == 30.69
    old_drop = {"2026-06": 1000, "2026-07": 100, "2026-08": 100, "2026-09": 100, "2026-10": 100}
    assert check_freshness(old_drop, date(2026, 11, 27), 15, 10.0).problems == []  # history is not re-alarmed
