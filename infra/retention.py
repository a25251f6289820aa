"""How long CloudWatch keeps logs: the smallest retention CloudWatch offers that keeps them
at least the configured number of days."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

_RETENTIONS = ((1, "ONE_DAY"), (3, "THREE_DAYS"), (5, "FIVE_DAYS"), (7, "ONE_WEEK"), (14, "TWO_WEEKS"),
               (30, "ONE_MONTH"), (60, "TWO_MONTHS"), (90, "THREE_MONTHS"), (120, "FOUR_MONTHS"),
               (150, "FIVE_MONTHS"), (180, "SIX_MONTHS"), (365, "ONE_YEAR"), (400, "THIRTEEN_MONTHS"),
               (545, "EIGHTEEN_MONTHS"), (731, "TWO_YEARS"), (1827, "FIVE_YEARS"), (3653, "TEN_YEARS"))


def retention(days: int) -> logs.RetentionDays:
    """The smallest CloudWatch retention that keeps logs at least ``days``."""
    name = next((n for limit, n in _RETENTIONS if limit >= days), _RETENTIONS[-1][1])
    return getattr(logs.RetentionDays, name)  # type: ignore[no-any-return]
