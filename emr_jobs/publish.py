"""Write–audit–publish (docs/architecture.md, "Publishing"): a step writes summary and
latest_summary on an Iceberg branch of each, the integrity checks read those branches, and
only then does `main` of both tables fast-forward. Readers of `main` never see rows whose
checks have not passed.

All of this runs under the single-writer lock, so every `audit_*` branch found when a step
starts belongs to a step that died. Summary's fast-forward removes its branch in the same
commit, and the branches are dropped in the reverse of the publishing order, so a dead
step's branch left on the changes table or latest_summary with none left on summary means
its checks passed and its publish began: the next step finishes it (fast-forwards those
tables to their branches). Any other dead branch is dropped, and the step's re-run starts
afresh from `main`. So at every step's start latest_summary holds each account's newest
summary row, and a step may take an account's latest row from summary.

The changes table (the amended-history feed) is branched too when the step keeps the feed,
and fast-forwarded right after summary: a reader never sees a change record before its rows.
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


def refs(spark: Any, table: str, kind: str = "BRANCH") -> List[Tuple[str, int]]:
    """The table's branches (``kind`` TAG: tags) and the snapshot each points at."""
    wanted = "isBranch" if kind == "BRANCH" else "isTag"
    return [(str(name), int(ref.snapshotId())) for name, ref in iceberg_table(spark, table).refs().items()
            if getattr(ref, wanted)()]


def open_audit(spark: Any, tables: Tables, branch: str, with_changes: bool = False) -> None:
    """Finish a dead step's interrupted publish, drop the branches of dead steps, then branch the
    tables this step writes from `main`."""
    heads_of = {table: dict(refs(spark, table)) for table in _audited(tables)}  # each table's metadata read once
    summary_heads = heads_of[tables.summary]
    for table, heads in heads_of.items():
        for name in (n for n in heads if n.startswith(BRANCH_PREFIX)):
            if table != tables.summary and name not in summary_heads:  # summary published it
                _fast_forward(spark, table, name)
            else:
                spark.sql(f"ALTER TABLE {table} DROP BRANCH `{name}`")
    for table in _audited(tables, with_changes):
        spark.sql(f"ALTER TABLE {table} CREATE BRANCH `{branch}`")


def publish(spark: Any, tables: Tables, branch: str, with_changes: bool = False, between: Any = lambda: None
            ) -> None:
    """Fast-forward `main` of summary, then of the changes table (with the feed), then of
    latest_summary, to the audited branches, each removing its branch in the same commit.
    ``between`` runs after summary's (fault injection)."""
    first, *rest = _audited(tables, with_changes)
    _fast_forward(spark, first, branch)
    between()
    for table in rest:
        _fast_forward(spark, table, branch)


def _fast_forward(spark: Any, table: str, branch: str) -> None:
    """`main` of ``table`` moved to ``branch``'s head and the branch removed, in one commit (Iceberg's
    ManageSnapshots; the `fast_forward` procedure would leave the branch for a second commit)."""
    iceberg_table(spark, table).manageSnapshots().fastForwardBranch("main", branch).removeBranch(branch).commit()


def close_audit(spark: Any, tables: Tables, branch: str, keep_days: Optional[int] = None) -> None:
    """Drop the step's branches, summary's last (while another table holds the branch, summary's
    tells whether the publish began); with ``keep_days`` (a failed audit) first tag their heads
    `failed_audit_<step>` for that many days, so an operator can read what failed."""
    for table in reversed(_audited(tables)):
        heads = dict(refs(spark, table))
        if branch not in heads:
            continue
        if keep_days:
            tag = FAILED_TAG_PREFIX + branch.removeprefix(BRANCH_PREFIX)
            spark.sql(f"ALTER TABLE {table} CREATE OR REPLACE TAG `{tag}` AS OF VERSION {heads[branch]} "
                      f"RETAIN {keep_days} DAYS")
        spark.sql(f"ALTER TABLE {table} DROP BRANCH `{branch}`")
