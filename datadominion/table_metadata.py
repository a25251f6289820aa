"""What is summarised, read from Iceberg metadata only (manifests; no data file is opened)."""

from __future__ import annotations

from typing import Any, List, Optional


def summarised_months(catalog: Any, identifier: str, month_column: str = "rpt_as_of_mo") -> List[str]:
    """Months with rows in the summary table, from its partition statistics."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        return []
    if table.current_snapshot() is None:
        return []
    partitions = table.inspect.partitions().to_pylist()
    return sorted({p["partition"][month_column] for p in partitions if p["record_count"] > 0})


def newest_summarised_month(catalog: Any, identifier: str, month_column: str = "rpt_as_of_mo") -> Optional[str]:
    months = summarised_months(catalog, identifier, month_column)
    return months[-1] if months else None
