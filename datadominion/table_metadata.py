"""What is summarised, read from Iceberg metadata only: the manifest list and manifests.

No data file is opened and pyarrow is not needed (the Plan Lambda ships without it):
each live data-file entry in the current snapshot's data manifests carries its partition
value and record count.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from datadominion.maintenance import MAINTAINED_AT_PROPERTY, TableHealth


def summarised_months(catalog: Any, identifier: str, month_column: str = "rpt_as_of_mo") -> List[str]:
    """Months with rows in the summary table (its partitions holding live data files)."""
    return sorted(rows_per_month(catalog, identifier, month_column))


def rows_per_month(catalog: Any, identifier: str, month_column: str = "rpt_as_of_mo") -> Dict[str, int]:
    """Live rows per month partition (one per account): data-file record counts minus
    position deletes, from the manifests alone. Months without data are absent."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.manifest import ManifestContent

    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        return {}
    snapshot = table.current_snapshot()
    if snapshot is None:
        return {}
    month_field_id = table.schema().find_field(month_column).field_id
    positions: Dict[int, int] = {}
    rows: Dict[str, int] = {}
    with_data: Set[str] = set()
    for manifest in snapshot.manifests(table.io):
        if manifest.partition_spec_id not in positions:
            positions[manifest.partition_spec_id] = _identity_position(table.specs()[manifest.partition_spec_id],
                                                                        month_field_id, identifier, month_column)
        position = positions[manifest.partition_spec_id]
        sign = 1 if manifest.content == ManifestContent.DATA else -1  # position deletes remove rows
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            month = str(entry.data_file.partition[position])
            rows[month] = rows.get(month, 0) + sign * entry.data_file.record_count
            if sign > 0 and entry.data_file.record_count > 0:
                with_data.add(month)
    return {month: rows[month] for month in sorted(with_data)}


def _identity_position(spec: Any, source_id: int, identifier: str, month_column: str) -> int:
    from pyiceberg.transforms import IdentityTransform

    for position, field in enumerate(spec.fields):
        if field.source_id == source_id and isinstance(field.transform, IdentityTransform):
            return position
    raise ValueError(f"table {identifier} is not partitioned by identity({month_column}) in spec {spec.spec_id}: "
                     "its months cannot be read from metadata")


def newest_summarised_month(catalog: Any, identifier: str, month_column: str = "rpt_as_of_mo") -> Optional[str]:
    months = summarised_months(catalog, identifier, month_column)
    return months[-1] if months else None


def bytes_per_record(catalog: Any, identifier: str) -> Optional[float]:
    """Average stored bytes per record of a table (its snapshot summary), None when empty."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        snapshot = catalog.load_table(identifier).current_snapshot()
    except NoSuchTableError:
        return None
    summary = snapshot.summary if snapshot is not None and snapshot.summary is not None else {}
    records = int(summary.get("total-records", 0))
    return int(summary.get("total-files-size", 0)) / records if records else None


def live_rows(catalog: Any, identifier: str) -> Optional[int]:
    """Rows in the table's current snapshot (records minus position deletes, from the snapshot
    summary: no file is read), or None when the table does not exist."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        snapshot = catalog.load_table(identifier).current_snapshot()
    except NoSuchTableError:
        return None
    summary = snapshot.summary if snapshot is not None and snapshot.summary is not None else {}
    return int(summary.get("total-records", 0)) - int(summary.get("total-position-deletes", 0))


def table_health(catalog: Any, identifier: str, name: str, months: int) -> Optional[TableHealth]:
    """The table's TableHealth from its metadata (snapshot summary, snapshot list, properties),
    or None when the table does not exist."""
    from datetime import datetime, timezone

    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        return None
    snapshots = table.metadata.snapshots
    current = table.current_snapshot()
    summary = current.summary if current is not None and current.summary is not None else {}

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)

    maintained = table.properties.get(MAINTAINED_AT_PROPERTY)
    return TableHealth(
        name=name, data_files=int(summary.get("total-data-files", 0)),
        delete_files=int(summary.get("total-delete-files", 0)), snapshots=len(snapshots), months=months,
        changed_at=at(current.timestamp_ms) if current is not None else None,
        created_at=at(min(s.timestamp_ms for s in snapshots)) if snapshots else None,
        maintained_at=datetime.fromisoformat(maintained) if maintained else None)
