"""Record every file pyiceberg opens, to show that reading table metadata opens no data file."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, List

import pyarrow as pa


@contextmanager
def opened_files() -> Iterator[List[str]]:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    paths: List[str] = []
    original = PyArrowFileIO.new_input

    def recording(self: Any, location: str) -> Any:
        paths.append(location)
        return original(self, location)

    PyArrowFileIO.new_input = recording  # type: ignore[method-assign]
    try:
        yield paths
    finally:
        PyArrowFileIO.new_input = original  # type: ignore[method-assign]


def month_partitioned_table(catalog: Any, identifier: str, months: List[str], rows_per_month: int = 100) -> Any:
    """A table partitioned by identity(rpt_as_of_mo), one append per month."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType, NestedField, StringType

    schema = Schema(NestedField(1, "cons_acct_key", LongType(), required=False),
                    NestedField(2, "rpt_as_of_mo", StringType(), required=False))
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "rpt_as_of_mo"))
    table = catalog.create_table(identifier, schema=schema, partition_spec=spec)
    for month in months:
        table.append(pa.table({"cons_acct_key": pa.array(range(rows_per_month), pa.int64()),
                               "rpt_as_of_mo": [month] * rows_per_month}))
    return table
