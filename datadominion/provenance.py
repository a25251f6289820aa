"""Provenance of one summary row (docs/architecture.md, "Provenance"): for each history
position, the month it stands for, the accounts_all record that supplied it (batch and
base_ts), the records it superseded, and whether the table holds that value.

Built from accounts_all's records alone, along its own path (plain Python, not the Spark
engine), so `datadominion explain` doubles as an operator's check of a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from datadominion.config import ColumnTransformation, PipelineConfig
from datadominion.months import add_months
from datadominion.schema import SOURCE_BATCH_COLUMN

UNKNOWN_BATCH = "(batch unknown)"  # records ingested before accounts_all kept the batch


def clean(value: Any, rule: ColumnTransformation, kind: str) -> Any:
    """The value a summary column takes from a record (datadominion/config.py's rules)."""
    if value is None:
        return None
    if rule.rule == "allowed_values":
        invalid = str(value) not in (rule.values or [])
    else:
        invalid = (rule.min is not None and value < rule.min) or (rule.max is not None and value > rule.max)
    if not invalid:
        return value
    if rule.replacement is None:
        return None
    try:
        return {"int": int, "bigint": int, "double": float}.get(kind, str)(rule.replacement)
    except ValueError:  # a replacement that does not fit the type reads as NULL (Spark's cast)
        return None


@dataclass(frozen=True)
class Source:
    batch: str
    base_ts: Any


@dataclass(frozen=True)
class Position:
    index: int
    month: str
    supplied_by: Optional[Source]  # None: no record for that month
    superseded: List[Source]
    expected: Dict[str, Any]  # rolling column (and grid) -> the value the record gives
    actual: Dict[str, Any]  # the same, as the table holds it
    differs: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Explanation:
    account: int
    month: str
    row_found: bool
    positions: List[Position]

    @property
    def agrees(self) -> bool:
        return self.row_found and not any(p.differs for p in self.positions)


def _summary_values(record: Dict[str, Any], config: PipelineConfig) -> Dict[str, Any]:
    types = config.summary_scalar_types
    values = {dest: record.get(src) for src, dest in config.columns.items()}
    for rule in config.column_transformations:
        values[rule.column] = clean(values[rule.column], rule, types[rule.column])
    return values


def _grid_cells(text: Optional[str], separator: str) -> List[str]:
    if text is None:
        return []
    return text.split(separator) if separator else list(text)


def explain(account: int, month: str, records: Sequence[Dict[str, Any]], row: Optional[Dict[str, Any]],
            config: PipelineConfig) -> Explanation:
    """``records``: the account's accounts_all records of months [month - H + 1, month];
    ``row``: its summary row for ``month`` (None when absent)."""
    key, month_col, ts = config.key_column, config.month_column, config.timestamp_column
    by_month: Dict[str, List[Dict[str, Any]]] = {}
    for r in records:
        if r[key] == account:
            by_month.setdefault(r[month_col], []).append(r)
    positions = []
    for i in range(config.history_length):
        m = add_months(month, -i)
        ranked = sorted(by_month.get(m, []), key=lambda r: r[ts], reverse=True)
        winner = ranked[0] if ranked else None
        values = _summary_values(winner, config) if winner else {}
        expected: Dict[str, Any] = {rc.name: values.get(rc.mapper_column) for rc in config.rolling_columns}
        actual: Dict[str, Any] = {rc.name: (row[rc.name][i] if row and row[rc.name] is not None
                                            and i < len(row[rc.name]) else None) for rc in config.rolling_columns}
        for g in config.grid_columns:
            value = expected[g.mapper_rolling_column]
            expected[g.name] = g.placeholder if value is None else str(value)
            cells = _grid_cells(row.get(g.name) if row else None, g.separator)
            actual[g.name] = cells[i] if i < len(cells) else None
        positions.append(Position(
            i, m, _source(winner, config) if winner else None,
            [_source(r, config) for r in ranked[1:] if r[ts] != winner[ts]] if winner else [],
            expected, actual, [c for c in expected if row is not None and expected[c] != actual[c]]))
    return Explanation(account, month, row is not None, positions)


def _source(record: Dict[str, Any], config: PipelineConfig) -> Source:
    return Source(record.get(SOURCE_BATCH_COLUMN) or UNKNOWN_BATCH, record[config.timestamp_column])


def read_explanation(catalog: Any, config: PipelineConfig, identifier: Any, account: int, month: str
                     ) -> Explanation:
    """Read the account's records and row with pyiceberg and explain the row.
    ``identifier(table)`` names a table in the catalog."""
    key, month_col = config.key_column, config.month_column
    months = ", ".join(f"'{add_months(month, -i)}'" for i in range(config.history_length))  # checked YYYY-MM
    records = catalog.load_table(identifier(config.source_table)).scan(
        row_filter=f"{key} = {int(account)} AND {month_col} IN ({months})").to_arrow().to_pylist()
    rows = catalog.load_table(identifier(config.destination_table)).scan(
        row_filter=f"{key} = {int(account)} AND {month_col} = '{add_months(month, 0)}'").to_arrow().to_pylist()
    return explain(account, month, records, rows[0] if rows else None, config)
