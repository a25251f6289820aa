"""The landing layout shared by the generator, the storage adapters and the job.

    accounts_all/rpt_as_of_mo=YYYY-MM/<batch_id>/part-*.parquet   then   _SUCCESS
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datadominion.months import MonthError, parse_month

SOURCE_PREFIX = "accounts_all/"
MONTH_FOLDER = "rpt_as_of_mo="
SUCCESS_MARKER = "_SUCCESS"
BATCH_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY_RE = re.compile(rf"^{SOURCE_PREFIX}{MONTH_FOLDER}([^/]*)/({BATCH_ID_PATTERN})/{SUCCESS_MARKER}$")
# A data file's path, anywhere (file:, s3:): group 1 the month, group 2 the batch id.
FILE_PATH_PATTERN = rf"{MONTH_FOLDER}([^/]+)/([^/]+)/[^/]+$"
MARKER_WILDCARD = f"{SOURCE_PREFIX}*/{SUCCESS_MARKER}"  # an S3/EventBridge wildcard for every marker


def month_folder(month: str) -> str:
    return f"{SOURCE_PREFIX}{MONTH_FOLDER}{month}/"


class BatchKeyError(ValueError):
    """A marker key that does not follow the landing layout."""


@dataclass(frozen=True)
class BatchRef:
    """One landing batch: its month and id; ``batch_key`` is unique across months."""

    month: str
    batch_id: str

    @property
    def prefix(self) -> str:
        return f"{month_folder(self.month)}{self.batch_id}/"

    @property
    def marker_key(self) -> str:
        return self.prefix + SUCCESS_MARKER

    @property
    def batch_key(self) -> str:
        return batch_key(self.month, self.batch_id)


def batch_key(month: str, batch_id: str) -> str:
    """A batch's identity across months (ledger key, step contents, snapshot markers)."""
    return f"{month}/{batch_id}"


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
