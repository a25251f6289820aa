"""Freshness and coverage expectations (pure): is the month that should be summarised by now
there, and did a recent month's account count fall too far against the month before?
docs/architecture.md, "Freshness and coverage"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Dict, List, Optional

from datadominion.months import format_month, month_of, parse_month

RECENT_MONTHS = 2  # account drops are checked for the newest months only, not all history


@dataclass(frozen=True)
class Freshness:
    overdue_month: Optional[str]  # the month expected by now that is not summarised
    problems: List[str]
    worst_drop_pct: float  # the largest recent month-on-month fall in accounts, in percent


def expected_month(today: date, due_day: int) -> str:
    """Month M is due by day ``due_day`` of M+1: the newest month that must be in by ``today``."""
    months_back = 1 if today.day >= due_day else 2
    return format_month(parse_month(month_of(today)) - months_back)


def check_freshness(rows_by_month: Dict[str, int], today: date, due_day: int, max_drop_pct: float) -> Freshness:
    if not rows_by_month:  # nothing summarised yet: no expectation to miss
        return Freshness(None, [], 0.0)
    problems: List[str] = []
    due, newest = expected_month(today, due_day), max(rows_by_month)
    overdue = due if due not in rows_by_month and due > newest else None
    if overdue:
        problems.append(f"month {overdue} was expected by day {due_day} of the month after it and is not "
                        f"summarised (newest: {newest})")
    months = sorted(rows_by_month)
    worst = 0.0
    for month in months[-RECENT_MONTHS:]:
        previous = format_month(parse_month(month) - 1)
        before, now = rows_by_month.get(previous), rows_by_month[month]
        if not before:
            continue
        drop = 100.0 * (before - now) / before
        worst = max(worst, drop)
        if drop > max_drop_pct:
            problems.append(f"month {month} has {now} accounts, {drop:.1f}% fewer than {previous} ({before}); "
                            f"more than the expected {max_drop_pct:g}%")
    return Freshness(overdue, problems, round(worst, 2))
