"""A single-node reference of the summary engine in DuckDB: the forward month and the full
from-scratch recompute, from the pipeline config. `make bench` times it beside the Spark
engine on the same inputs (the gap is measured, not remembered); a test compares both.

Written along its own path: arrays are built with list_resize/list_concat (forward) and a
per-account map of month -> values (recompute), not the engine's formulations.
"""

from __future__ import annotations

from typing import Any, List

from datadominion.config import PipelineConfig


def _clean_scalars(config: PipelineConfig) -> str:
    rules = {r.column: r for r in config.column_transformations}
    items = []
    for src, dest in config.columns.items():
        rule = rules.get(dest)
        if rule is None:
            items.append(f"{src} AS {dest}")
            continue
        if rule.rule == "allowed_values":
            invalid = f"{src}::VARCHAR NOT IN ({', '.join(repr(v) for v in rule.values or [])})"
        else:
            bounds = ([f"{src} < {rule.min}"] if rule.min is not None else []) + (
                [f"{src} > {rule.max}"] if rule.max is not None else [])
            invalid = " OR ".join(bounds)
        kind = config.summary_scalar_types[dest]
        replacement = "NULL" if rule.replacement is None else f"TRY_CAST({rule.replacement!r} AS {_sql_type(kind)})"
        items.append(f"CASE WHEN {invalid} THEN {replacement} ELSE {src} END AS {dest}")
    return ", ".join(items)


def _sql_type(kind: str) -> str:
    return {"bigint": "BIGINT", "int": "INTEGER", "string": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMPTZ",
            "double": "DOUBLE"}[kind]


def _month_index(column: str) -> str:
    return f"(CAST(substr({column}, 1, 4) AS INTEGER) * 12 + CAST(substr({column}, 6, 2) AS INTEGER) - 1)"


def newest_records_sql(config: PipelineConfig, source: str) -> str:
    """Cleaned summary scalars, the newest record per (account, month), with its month index."""
    key, month, ts = config.key_column, config.month_column, config.timestamp_column
    return (f"SELECT *, {_month_index(month)} AS _mi FROM (SELECT {_clean_scalars(config)} FROM {source}) "
            f"QUALIFY row_number() OVER (PARTITION BY {key}, {month} ORDER BY {ts} DESC) = 1")


def _grids(config: PipelineConfig) -> List[str]:
    return [f"array_to_string(list_transform({g.mapper_rolling_column}, lambda x: coalesce(x::VARCHAR, "
            f"'{g.placeholder}')), '{g.separator}') AS {g.name}" for g in config.grid_columns]


def _columns(config: PipelineConfig) -> str:
    names = list(config.summary_scalar_types) + [r.name for r in config.rolling_columns] + [
        g.name for g in config.grid_columns]
    return ", ".join(names)


def forward_sql(config: PipelineConfig, new_records: str, latest: str) -> str:
    """Summary rows of a forward month: each record's arrays are its value, NULLs for the
    months skipped, then the latest row's arrays, cut to the history length."""
    h, key, month = config.history_length, config.key_column, config.month_column
    arrays = [
        f"CASE WHEN l.{key} IS NULL OR n._mi - l._lmi >= {h} THEN list_resize([n.{r.mapper_column}], {h}) "
        f"ELSE list_resize(list_concat(list_resize([n.{r.mapper_column}], n._mi - l._lmi), l.{r.name}), {h}) "
        f"END AS {r.name}" for r in config.rolling_columns]
    scalars = ", ".join(f"n.{c}" for c in config.summary_scalar_types)
    rows = (f"SELECT {scalars}, {', '.join(arrays)} FROM ({newest_records_sql(config, new_records)}) n "
            f"LEFT JOIN (SELECT *, {_month_index(month)} AS _lmi FROM {latest}) l USING ({key})")
    return f"SELECT {_columns(config)} FROM (SELECT *, {', '.join(_grids(config))} FROM ({rows}))"


def recompute_sql(config: PipelineConfig, accounts_all: str) -> str:
    """Every summary row from scratch: per account a map month index -> values; a row's
    history position i is the map's entry for its month - i."""
    h, key = config.history_length, config.key_column
    values = ", ".join(f"{r.mapper_column} := {r.mapper_column}" for r in config.rolling_columns)
    arrays = ", ".join(f"list_transform(range({h}), lambda i: p._pts[r._mi - i].{r.mapper_column}) AS {r.name}"
                       for r in config.rolling_columns)
    scalars = ", ".join(f"r.{c}" for c in config.summary_scalar_types)
    records = newest_records_sql(config, accounts_all)
    rows = (f"SELECT {scalars}, {arrays} FROM ({records}) r JOIN (SELECT {key}, map(list(_mi), "
            f"list(struct_pack({values}))) AS _pts FROM ({records}) GROUP BY {key}) p USING ({key})")
    return f"SELECT {_columns(config)} FROM (SELECT *, {', '.join(_grids(config))} FROM ({rows}))"


def connect(threads: int = 2) -> Any:
    import duckdb

    db = duckdb.connect()
    db.execute(f"SET threads = {threads}")
    db.execute("SET TimeZone = 'UTC'")
    return db
