"""The benchmark's reading of Spark's SQL metric values (tests/benchmarks/run.py)."""

from __future__ import annotations

import pytest

from tests.benchmarks.run import _leading_int


@pytest.mark.parametrize("text, number", [
    ("3", 3), ("1,024", 1024), (" 12 files", 12), ("0", 0), ("7 (skipped 2)", 7),
])
def test_a_metric_value_reads_as_the_number_it_starts_with(text: str, number: int) -> None:
    assert _leading_int(text) == number


@pytest.mark.parametrize("text", ["", "n/a", "-", "total (min, med, max)"])
def test_a_metric_value_without_a_leading_number_reads_as_none(text: str) -> None:
    assert _leading_int(text) is None
