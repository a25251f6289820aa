"""Storage port: list and inspect landing batches (S3 in AWS, a folder locally)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the landing root, e.g. accounts_all/rpt_as_of_mo=2024-03/b1/part-0.parquet
    size: int
    modified: Optional[datetime] = None


class BatchStorage(Protocol):
    def list(self, prefix: str) -> List[StoredObject]:
        """Objects under ``prefix`` (recursively), sorted by key."""

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``; a negative start counts from the end."""

    def write_text(self, key: str, text: str) -> None:
        """Write a small text object (producer feedback beside a batch)."""

    def uri(self, key_or_prefix: str) -> str:
        """Where Spark reads it (file:// or s3://)."""
