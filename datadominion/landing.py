"""The landing layout shared by the generator, the storage adapters and the job.

    accounts_all/rpt_as_of_mo=YYYY-MM/<batch_id>/part-*.parquet   then   _SUCCESS
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datadominion.months import MonthError, parse_month

SOURCE_PREFIX = "accounts_all/"
SUCCESS_MARKER = "_SUCCESS"
BATCH_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY_RE = re.compile(rf"^accounts_all/rpt_as_of_mo=([^/]*)/({BATCH_ID_PATTERN})/_SUCCESS$")


class BatchKeyError(ValueError):
    """A marker key that does not follow the landing layout."""


@dataclass(frozen=True)
class BatchRef:
    """One landing batch: its month and id; ``batch_key`` is unique across months."""

    month: str
    batch_id: str

    @property
    def prefix(self) -> str:
        return f"{SOURCE_PREFIX}rpt_as_of_mo={self.month}/{self.batch_id}/"

    @property
    def marker_key(self) -> str:
        return self.prefix + SUCCESS_MARKER

    @property
    def batch_key(self) -> str:
        return f"{self.month}/{self.batch_id}"


def parse_marker_key(key: str) -> BatchRef:
    """Parse a ``_SUCCESS`` key into a BatchRef, or raise BatchKeyError saying what is wrong."""
    if not key.startswith(SOURCE_PREFIX):
        raise BatchKeyError(f"key {key!r} is not under the {SOURCE_PREFIX!r} prefix")
    if not key.endswith("/" + SUCCESS_MARKER):
        raise BatchKeyError(f"key {key!r} is not a {SUCCESS_MARKER} marker")
    match = _KEY_RE.match(key)
    if not match:
        raise BatchKeyError(
            f"key {key!r} does not follow accounts_all/rpt_as_of_mo=YYYY-MM/<batch_id>/_SUCCESS "
            f"(batch ids are 1-128 letters, digits, '.', '_' or '-')"
        )
    month, batch_id = match.group(1), match.group(2)
    try:
        parse_month(month)
    except MonthError as exc:
        raise BatchKeyError(f"key {key!r}: {exc}") from exc
    return BatchRef(month=month, batch_id=batch_id)
