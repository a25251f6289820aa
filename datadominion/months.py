"""Month arithmetic on 'YYYY-MM' strings.

A month index is ``year * 12 + (month - 1)``: consecutive months differ by one, so the
distance between two months is a subtraction and history position i of month m is m - i.
"""

from __future__ import annotations

import re
from datetime import date

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class MonthError(ValueError):
    """A string that is not a real 'YYYY-MM' month."""


def parse_month(text: str) -> int:
    """Return the month index of ``text`` ('YYYY-MM'), or raise MonthError naming the problem."""
    match = _MONTH_RE.match(text or "")
    if not match:
        raise MonthError(f"{text!r} is not a month in the form YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise MonthError(f"{text!r} has month {month:02d}; months run 01-12")
    if year < 1900:
        raise MonthError(f"{text!r} has year {year}; years before 1900 are not accepted")
    return year * 12 + (month - 1)


def format_month(index: int) -> str:
    """Inverse of :func:`parse_month`."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def add_months(month: str, delta: int) -> str:
    return format_month(parse_month(month) + delta)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"
