"""Write–audit–publish (docs/architecture.md, "Publishing"): a step writes summary and
latest_summary on an Iceberg branch of each, the integrity checks read those branches, and
only then does `main` of both tables fast-forward. Readers of `main` never see rows whose
checks have not passed.

All of this runs under the single-writer lock, so every `audit_*` branch found when a step
starts belongs to a step that died; it is dropped and the step's re-run starts afresh from
`main` (a re-run recomputes from accounts_all, so it also finishes a publish that was
interrupted between the fast-forwards).

The changes table (the amended-history feed) is branched too when the step keeps the feed,
and fast-forwarded right after summary: a reader never sees a change record before its
rows. If a step died after publishing summary but before its change records, the next step
finishes that publish (its re-run would find nothing left to change, so nothing else would
ever write them).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from emr_jobs.tables import Tables, iceberg_table

BRANCH_PREFIX = "audit_"
FAILED_TAG_PREFIX = "failed_audit_"


def audit_branch(step_id: str) -> str:
    return BRANCH_PREFIX + "".join(c if c.isalnum() else "_" for c in step_id)


def _audited(tables: Tables, with_changes: bool = True) -> Tuple[str, ...]:
    """The tables a step publishes, in publishing order."""
    if with_changes:
        return tables.summary, tables.changes, tables.latest_summary
    return tables.summary, tables.latest_summary


def _short(tables: Tables, table: str) -> str:
    """The identifier the system procedures take: namespace.table, without the catalog."""
    return table.removeprefix(f"{tables.catalog}.")


def refs(spark: Any, table: str, kind: str = "BRANCH") -> List[Tuple[str, int]]:
    """The table's branches (``kind`` TAG: tags) and the snapshot each points at."""
    wanted = "isBranch" if kind == "BRANCH" else "isTag"
    return [(str(name), int(ref.snapshotId())) for name, ref in iceberg_table(spark, table).refs().items()
            if getattr(ref, wanted)()]


def open_audit(spark: Any, tables: Tables, branch: str, with_changes: bool = False) -> None:
    """Finish a dead step's interrupted publish of its change records, drop the branches of
    dead steps, then branch the tables this step writes from `main`."""
    heads_of = {table: dict(refs(spark, table)) for table in _audited(tables)}  # each table's metadata read once
    summary_heads = heads_of[tables.summary]
    for table, heads in heads_of.items():
        for name in (n for n in heads if n.startswith(BRANCH_PREFIX)):
            published = name in summary_heads and summary_heads[name] == summary_heads.get("main")
            if table == tables.changes and published and heads[name] != heads.get("main"):
                _fast_forward(spark, tables, table, name)
            spark.sql(f"ALTER TABLE {table} DROP BRANCH `{name}`")
    for table in _audited(tables, with_changes):
        spark.sql(f"ALTER TABLE {table} CREATE BRANCH `{branch}`")


def publish(spark: Any, tables: Tables, branch: str, with_changes: bool = False, between: Any = lambda: None
            ) -> None:
    """Fast-forward `main` of summary, then of the changes table (with the feed), then of
    latest_summary, to the audited branches; then drop the branches. ``between`` runs after
    summary's (fault injection)."""
    first, *rest = _audited(tables, with_changes)
    _fast_forward(spark, tables, first, branch)
    between()
    for table in rest:
        _fast_forward(spark, tables, table, branch)
    close_audit(spark, tables, branch)


def _fast_forward(spark: Any, tables: Tables, table: str, branch: str) -> None:
    spark.sql(f"CALL {tables.catalog}.system.fast_forward('{_short(tables, table)}', 'main', '{branch}')").collect()


def close_audit(spark: Any, tables: Tables, branch: str, keep_days: Optional[int] = None) -> None:
    """Drop the step's branches; with ``keep_days`` (a failed audit) first tag their heads
    `failed_audit_<step>` for that many days, so an operator can read what failed."""
    for table in _audited(tables):
        heads = dict(refs(spark, table))
        if branch not in heads:
            continue
        if keep_days:
            tag = FAILED_TAG_PREFIX + branch.removeprefix(BRANCH_PREFIX)
            spark.sql(f"ALTER TABLE {table} CREATE OR REPLACE TAG `{tag}` AS OF VERSION {heads[branch]} "
                      f"RETAIN {keep_days} DAYS")
        spark.sql(f"ALTER TABLE {table} DROP BRANCH `{branch}`")
