"""An independent, plain-Python statement of the summary semantics (docs/architecture.md, "Table semantics").

Deliberately shares no code with the engine: records in, expected tables out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Tuple


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _clean(value: Any, rule: Any) -> Any:
    if value is None:
        return None
    if rule.rule == "allowed_values":
        return value if value in rule.values else rule.replacement
    if rule.min is not None and value < rule.min:
        return rule.replacement
    if rule.max is not None and value > rule.max:
        return rule.replacement
    return value


def _naive_utc(value: Any) -> Any:
    """Spark hands back session-time-zone (UTC) timestamps as naive datetimes."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def expected_tables(records: Iterable[Dict[str, Any]], config: Any) -> Tuple[Dict[Tuple[int, str], Dict[str, Any]],
                                                                               Dict[int, Dict[str, Any]]]:
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    newest: Dict[Tuple[int, str], Dict[str, Any]] = {}
    for record in records:
        ident = (record[key], record[month])
        if ident not in newest or _naive_utc(record[ts]) > _naive_utc(newest[ident][ts]):
            newest[ident] = record
    rules = {r.column: r for r in config.column_transformations}
    mapped: Dict[Tuple[int, str], Dict[str, Any]] = {}
    for ident, record in newest.items():
        row = {dest: _naive_utc(record[src]) for src, dest in config.columns.items()}
        for column, rule in rules.items():
            row[column] = _clean(row[column], rule)
        mapped[ident] = row
    by_account: Dict[int, Dict[int, Dict[str, Any]]] = {}
    for (account, mo), row in mapped.items():
        by_account.setdefault(account, {})[_month_index(mo)] = row
    h = config.history_length
    summary: Dict[Tuple[int, str], Dict[str, Any]] = {}
    latest: Dict[int, Dict[str, Any]] = {}
    for account, months in by_account.items():
        for index, row in months.items():
            out = dict(row)
            for rolling in config.rolling_columns:
                out[rolling.name] = [
                    months[index - i][rolling.mapper_column] if (index - i) in months else None for i in range(h)
                ]
            for grid in config.grid_columns:
                out[grid.name] = grid.separator.join(
                    grid.placeholder if v is None else str(v) for v in out[grid.mapper_rolling_column]
                )
            summary[(account, row[month])] = out
        latest[account] = summary[(account, max(months and [r[month] for r in months.values()]))]
    return summary, latest


def diff_tables(actual: Dict[Any, Dict[str, Any]], expected: Dict[Any, Dict[str, Any]], limit: int = 5) -> List[str]:
    problems = []
    for ident in sorted(set(actual) | set(expected), key=str):
        if ident not in actual:
            problems.append(f"missing row {ident}")
        elif ident not in expected:
            problems.append(f"unexpected row {ident}")
        else:
            for column, value in expected[ident].items():
                if actual[ident].get(column) != value:
                    problems.append(f"{ident} {column}: got {actual[ident].get(column)!r}, want {value!r}")
        if len(problems) >= limit:
            break
    return problems
