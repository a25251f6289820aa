"""`datadominion`: the local mode command (embedded default; no AWS).

State lives in $DATADOMINION_HOME (default .local/ in the current folder).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from datadominion.config import ConfigError, PipelineConfig, load_pipeline_config
from datadominion.lifecycle import RunPolicy
from datadominion.months import MonthError, parse_month
from datadominion.registration import find_incomplete, unregistered_batches
from datadominion.run_tasks import describe_usage

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pipeline.json"
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get("DATADOMINION_HOME") or ".local")


def _config(args: argparse.Namespace) -> PipelineConfig:
    return load_pipeline_config(args.config)


def _env(args: argparse.Namespace) -> Any:
    from localmode.environment import LocalEnvironment

    return LocalEnvironment(_home(args), _config(args))


def _months(text: str) -> List[str]:
    months = [m.strip() for m in text.split(",") if m.strip()]
    for m in months:
        parse_month(m)
    return months


def _say(text: str) -> None:
    print(text, flush=True)


# --- commands -----------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from localmode.generator import generate

    env_home = _home(args)
    written = generate(_config(args), env_home / "landing", args.accounts, args.months, args.start_month,
                       args.gap_pct, args.seed, args.files_per_batch)
    rows = sum(w.rows for w in written)
    _say(f"wrote {len(written)} batch(es), {rows} rows, {written[0].ref.month}..{written[-1].ref.month} "
         f"under {env_home / 'landing'}")
    return EXIT_OK


def cmd_correct(args: argparse.Namespace) -> int:
    from localmode.generator import write_corrections

    accounts = [int(a) for a in args.accounts.split(",")]
    base_ts = datetime.fromisoformat(args.base_ts) if args.base_ts else datetime.now(timezone.utc)
    if base_ts.tzinfo is None:
        base_ts = base_ts.replace(tzinfo=timezone.utc)
    written = write_corrections(_config(args), _home(args) / "landing", accounts, _months(args.months),
                                args.past_due_delta, args.dpd_delta, base_ts)
    for w in written:
        _say(f"wrote correction batch {w.ref.batch_key}: {w.rows} row(s)")
    return EXIT_OK


def _process(args: argparse.Namespace, rerun_months: Sequence[str] = (), maintain: bool = False) -> int:
    from datadominion.lifecycle import RunPolicy
    from localmode.loop import LockBusy

    env = _env(args)
    env.runner.progress = lambda stage: _say(f"    {stage}")
    try:
        result = env.process(policy=RunPolicy(tolerance_months=args.tolerance), wait_seconds=args.wait,
                             rerun_months=rerun_months, notify=_say, maintain=maintain,
                             retry_failed=bool(getattr(args, "retry_failed", False)))
    except LockBusy as exc:
        _say(f"not started: {exc}")
        return EXIT_BUSY
    modes: Dict[str, int] = {}
    rows = 0
    for step in result.steps:
        if step["state"] == "SUCCESS":
            modes[step["mode"]] = modes.get(step["mode"], 0) + len(step["months"])
            rows += int(step["report"].get("summary_rows_written", 0))
    by_mode = ", ".join(f"{m}={n}" for m, n in sorted(modes.items())) or "none"
    _say(f"summary: {len(result.done)} batch(es) done, {len(result.rejected)} rejected, "
         f"{len(result.failed)} failed; months by mode: {by_mode}; {rows} summary rows written; "
         f"{result.seconds:.1f}s")
    for key, reason in result.rejected.items():
        _say(f"  rejected {key}: {reason.splitlines()[0]}")
    for key, reason in result.failed.items():
        _say(f"  failed {key}: {reason.splitlines()[0] if reason else ''}")
    return EXIT_OK if result.ok else EXIT_PROBLEMS


def cmd_process(args: argparse.Namespace) -> int:
    return _process(args)


def cmd_rerun(args: argparse.Namespace) -> int:
    from datadominion.run_input import RunInputError, parse_run_input

    try:
        request = parse_run_input({"rerun": {"months": [m.strip() for m in args.months.split(",")]}},
                                  datetime.now(timezone.utc))
    except RunInputError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    return _process(args, request.rerun_months)


def cmd_plan(args: argparse.Namespace) -> int:
    """What `process` (or `rerun`, `maintain`) would do now; nothing is locked or written."""
    from datadominion import run_tasks
    from datadominion.table_metadata import bytes_per_record, rows_per_month

    env = _env(args)
    cfg = env.config
    rerun = _months(args.rerun_months) if args.rerun_months else []
    result = run_tasks.preview(
        env.ledger, rows_by_month=rows_per_month(env.catalog, env.identifier(cfg.destination_table), cfg.month_column),
        bytes_per_record=bytes_per_record(env.catalog, env.identifier(cfg.source_table)), policy=RunPolicy(),
        history_length=cfg.history_length, rerun_months=rerun, retry_failed=args.retry_failed,
        maintain_reasons=(["requested by the operator"] if args.maintain else []) + env.maintenance_due(),
        extra_pending=unregistered_batches(env.storage, env.ledger, datetime.now(timezone.utc)))
    _say("plan preview (nothing locked or written):" if result["steps"] else "plan preview: nothing to do")
    header = ("#", "mode", "months", "batches", "accounts~", "summary rows~", "rewrites months", "expected")
    rows = [(str(n), s["mode"], _span(s["months"]), str(s["batch_count"]), str(s["accounts_estimate"]),
             str(s["summary_rows_estimate"]), s["rewrites_months"] or "-", _expected_text(s))
            for n, s in enumerate(result["steps"], start=1)]
    _table(None, header, rows)
    return EXIT_OK


def _span(months: Sequence[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]} ({len(months)})"


def _expected_text(step: Dict[str, Any]) -> str:
    expected = step["expected"]
    return expected if isinstance(expected, str) else f"{describe_usage(expected)} (median of {step['history_steps']})"


def _aligned(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def cmd_maintain(args: argparse.Namespace) -> int:
    return _process(args, maintain=True)


def cmd_watch(args: argparse.Namespace) -> int:
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True
        _say("stopping after the current run ...")

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    status = EXIT_OK
    _say(f"watching {_home(args) / 'landing'} every {args.interval}s (Ctrl-C to stop)")
    from datadominion.lifecycle import pending_batches
    from datadominion.registration import find_markers

    env = _env(args)
    seen: set = set()
    while not stop["now"]:
        markers = set(find_markers(env.storage))
        pending = pending_batches(env.ledger)
        if markers - seen or pending:
            status = _process(args) or status
            seen = markers
        deadline = time.monotonic() + args.interval
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(0.2)
        if args.once:
            break
    return status


def cmd_status(args: argparse.Namespace) -> int:
    env = _env(args)
    batches = env.ledger.batches()
    counts: Dict[str, int] = {}
    for b in batches:
        counts[b.state] = counts.get(b.state, 0) + 1
    _say("ledger: " + (", ".join(f"{s}={n}" for s, n in sorted(counts.items())) or "no batches"))
    for stalled in find_incomplete(env.storage, datetime.now(timezone.utc), timedelta(hours=args.incomplete_after)):
        _say(f"  INCOMPLETE {stalled.folder}: {stalled.objects} object(s), newest {stalled.newest.isoformat()}, "
             "no _SUCCESS (a delivery that never finished?)")
    _status_attention(batches)
    lock = env.ledger.lock()
    _say(f"lock: held by {lock.owner} until {lock.expires_at.isoformat()}" if lock else "lock: free")
    _table("runs", ("run", "outcome", "steps", "started"),
           [(r.run_id, r.outcome, str(len(r.steps)), _when(r.started_at)) for r in env.ledger.runs(5)])
    _table("steps", ("mode", "months", "outcome", "finished", "amended rows", "usage"),
           [(s.mode, _span(s.months), s.outcome, _when(s.finished_at),
             str(dict(s.report.get("changes") or {}).get("records", "-")), describe_usage(s.usage))
            for s in env.ledger.steps(5)])
    for m in env.ledger.steps(1, mode="maintain"):
        tables = dict(m.report.get("maintenance", {}))
        figures = "; ".join(f"{t}: delete files {v['before']['delete_files']}->{v['after']['delete_files']}"
                            for t, v in tables.items())
        _say(f"maintained {m.finished_at.isoformat()}: {m.outcome} ({', '.join(m.notes)}) {figures}")
    _status_tables(env, args.today)
    return EXIT_OK


def _table(title: Optional[str], header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows under their header, columns aligned and indented; nothing at all for no rows."""
    if rows:
        if title:
            _say(f"{title}:")
        for line in _aligned([header, *rows]):
            _say("  " + line)


def _status_attention(batches: Sequence[Any]) -> None:
    """Batches an operator should look at, with where to look."""
    for b in batches:
        if b.state in ("REJECTED", "FAILED", "RUNNING"):
            _say(f"  {b.state:9s} {b.batch_key}: {b.reason.splitlines()[0] if b.reason else ''}")
            for label, value in (("job run", b.job_run_id), ("logs", b.log_uri), ("CloudWatch", b.cloudwatch_logs),
                                 ("dashboard", b.dashboard_url)):
                if value:
                    _say(f"            {label}: {value}")


def _status_tables(env: Any, today: Optional[str]) -> None:
    from datadominion.table_metadata import live_rows, rows_per_month

    cfg = env.config
    rows, warnings = [], []
    for table in (cfg.source_table, cfg.destination_table, cfg.latest_history_table, cfg.changes_table):
        count = live_rows(env.catalog, env.identifier(table))
        months = ""
        if count is not None and table == cfg.destination_table:
            per_month = rows_per_month(env.catalog, env.identifier(table), cfg.month_column)
            months = _span(sorted(per_month)) if per_month else ""
            warnings = _freshness_problems(cfg, per_month, today)
        rows.append((table, "not created yet" if count is None else str(count), months or "-"))
    _table("tables", ("table", "rows", "months"), rows)
    for problem in warnings:
        _say(f"  WARNING {problem}")


def _freshness_problems(config: PipelineConfig, per_month: Dict[str, int], today: Optional[str]) -> List[str]:
    from datadominion.freshness import check_freshness

    day = date.fromisoformat(today) if today else datetime.now(timezone.utc).date()
    expect = config.expectations
    return check_freshness(per_month, day, expect.month_due_day, expect.max_account_drop_pct).problems


def _spark_tables(env: Any) -> Any:
    return env.runner.session(), env.runner.tables


def cmd_validate(args: argparse.Namespace) -> int:
    from emr_jobs.checks import check_rows
    from emr_jobs.recompute import validate_tables

    env = _env(args)
    spark, tables = _spark_tables(env)
    problems = check_rows(spark.table(tables.summary), env.config, tables.summary)
    problems += check_rows(spark.table(tables.latest_summary), env.config, tables.latest_summary)
    validation = validate_tables(spark, tables)
    problems += validation.problems
    if problems:
        _say("VALIDATION FAILED:")
        for p in problems[:40]:
            _say(f"  {p}")
        return EXIT_PROBLEMS
    _say(f"validation passed: {validation.rows[tables.summary]} summary rows and latest_summary equal a from-scratch "
         f"recomputation; integrity checks clean")
    return EXIT_OK


def cmd_check_batch(args: argparse.Namespace) -> int:
    from localmode.check_batch import check_batch

    env = _env(args)
    spark, tables = _spark_tables(env)
    problems = check_batch(args.location, spark, tables, env.config, datetime.now(timezone.utc), args.tolerance)
    if problems:
        _say(f"{args.location} would be REJECTED:")
        for problem in problems:
            _say("  " + problem.replace("\n", "\n  "))
        return EXIT_PROBLEMS
    _say(f"{args.location} passes every check a delivered batch meets")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    env = _env(args)
    spark, tables = _spark_tables(env)
    cfg = env.config
    df = spark.table(tables.summary).where(F.col(cfg.key_column) == args.account)
    if args.months:
        df = df.where(F.col(cfg.month_column).isin(_months(args.months)))
    rows = df.orderBy(cfg.month_column).collect()
    if not rows:
        _say(f"account {args.account}: no summary rows")
        return EXIT_PROBLEMS
    print_account(rows, cfg)
    return EXIT_OK


def print_account(rows: Sequence[Any], cfg: PipelineConfig, history_shown: int = 6) -> None:
    """The account's months: the scalars its rolling arrays hold (config-driven), then the grid."""
    grid = cfg.grid_columns[0].name if cfg.grid_columns else None
    scalars = [r.mapper_column for r in cfg.rolling_columns]
    widths = [max(len(c), 9) for c in scalars]
    _say(f"account {rows[0][cfg.key_column]}: {len(rows)} month(s)  (grid: newest month first, "
         f"'{cfg.grid_columns[0].placeholder if grid else '?'}' = no record)")
    _say(f"{'month':8s} " + " ".join(f"{c:>{w}s}" for c, w in zip(scalars, widths)) + ("  grid" if grid else ""))
    for r in rows:
        _say(f"{r[cfg.month_column]:8s} " + " ".join(f"{str(r[c]):>{w}s}" for c, w in zip(scalars, widths))
             + (f"  {r[grid]}" if grid else ""))
    last = rows[-1]
    _say(f"arrays of {last[cfg.month_column]} (first {history_shown} of {cfg.history_length}):")
    for rc in cfg.rolling_columns:
        _say(f"  {rc.name:28s} {list(last[rc.name][:history_shown])}")


def cmd_changes(args: argparse.Namespace) -> int:
    """The amended-history feed: summary rows published steps changed since a time or a step."""
    from datadominion.change_feed import SinceError, read_changes, resolve_since

    env = _env(args)
    cfg = env.config
    try:
        since = resolve_since(args.since, env.ledger.steps(10_000))
    except SinceError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    records = read_changes(env.catalog, env.identifier(cfg.changes_table), since, cfg.key_column, cfg.month_column)
    _say(f"{len(records)} change record(s) since {since.isoformat()}")
    rows = [(r.changed_at.isoformat(timespec="seconds"), r.step_id[:12], r.step_mode, str(r.account), r.month,
             r.kind, r.causes_text(), r.changes_text()) for r in records[:args.limit]]
    _table(None, ("changed at", "step", "mode", "account", "month", "kind", "caused by", "what changed"), rows)
    if len(records) > args.limit:
        _say(f"  ... {len(records) - args.limit} more (raise --limit)")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Where every history position of one summary row came from, checked against the table."""
    from datadominion.provenance import read_explanation

    env = _env(args)
    cfg = env.config
    month = _months(args.month)[0]
    found = read_explanation(env.catalog, cfg, env.identifier, args.account, month)
    if not found.row_found and not any(p.supplied_by for p in found.positions):
        _say(f"account {args.account}, month {month}: no summary row and no accounts_all record")
        return EXIT_PROBLEMS
    columns = [rc.name for rc in cfg.rolling_columns] + [g.name for g in cfg.grid_columns]
    labels = {rc.name: rc.mapper_column for rc in cfg.rolling_columns}
    header = ("pos", "month", "supplied by", "base_ts", "superseded", *[labels.get(c, c) for c in columns], "table")
    rows = []
    for p in found.positions:
        source = p.supplied_by
        rows.append((str(p.index), p.month, source.batch if source else "-", _when(source.base_ts) if source else "-",
                     ", ".join(f"{s.batch} {_when(s.base_ts)}" for s in p.superseded) or "-",
                     *[_cell(p.expected[c]) for c in columns],
                     "DIFFERS " + ", ".join(f"{c}={p.actual[c]!r}" for c in p.differs) if p.differs else "agrees"))
    verdict = ("every position agrees with the table" if found.agrees else
               "NO SUMMARY ROW (the records below say it should exist)" if not found.row_found else
               f"{sum(1 for p in found.positions if p.differs)} position(s) DIFFER from the table")
    _say(f"account {args.account}, month {month}: {verdict}")
    _table(None, header, rows)
    return EXIT_OK if found.agrees else EXIT_PROBLEMS


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if hasattr(moment, "isoformat") else str(moment)


def _cell(value: Any) -> str:
    return "NULL" if value is None else str(value)


def cmd_demo(args: argparse.Namespace) -> int:
    from localmode.demo import run_demo

    return run_demo(_home(args) / "demo", _config(args), _say, fresh=not args.keep)


# --- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datadominion", description=__doc__)
    parser.add_argument("--home", help="state folder (default $DATADOMINION_HOME or .local)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="pipeline config JSON")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    g = add("generate", cmd_generate, "write monthly landing batches of synthetic accounts")
    g.add_argument("--accounts", type=int, required=True)
    g.add_argument("--months", type=int, required=True)
    g.add_argument("--start-month", required=True)
    g.add_argument("--gap-pct", type=float, default=0.0, help="percent of account-months left out")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--files-per-batch", type=int, default=1)

    c = add("correct", cmd_correct, "write late correction batches (newer base_ts) for accounts and months")
    c.add_argument("--accounts", required=True, help="comma-separated account keys")
    c.add_argument("--months", required=True, help="comma-separated YYYY-MM")
    c.add_argument("--past-due-delta", type=int, default=20000)
    c.add_argument("--dpd-delta", type=int, default=60)
    c.add_argument("--base-ts", help="ISO timestamp of the corrections (default now, UTC)")

    for name, func, text in (("process", cmd_process, "register complete batches and apply everything pending"),
                             ("rerun", cmd_rerun, "recompute months from accounts_all (the console re-run)"),
                             ("maintain", cmd_maintain, "compact, expire snapshots, remove orphans (under the lock)"),
                             ("watch", cmd_watch, "poll the landing folder and process batches as they complete")):
        p = add(name, func, text)
        p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for another run's lock")
        p.add_argument("--tolerance", type=int, default=1, help="months after the current one still accepted")
        if name == "rerun":
            p.add_argument("--months", required=True, help="comma-separated YYYY-MM")
        if name == "process":
            p.add_argument("--retry-failed", action="store_true",
                           help="also retry batches parked after repeated failures")
        if name == "watch":
            p.add_argument("--interval", type=float, default=5.0)
            p.add_argument("--once", action="store_true", help=argparse.SUPPRESS)

    st = add("status", cmd_status, "ledger, lock, recent runs and table sizes")
    st.add_argument("--today", help=argparse.SUPPRESS)  # the freshness check's date (tests)
    st.add_argument("--incomplete-after", type=float, default=RunPolicy.incomplete_after_hours,
                    help="hours after which a batch folder with data but no _SUCCESS is reported")
    add("validate", cmd_validate, "integrity checks + full comparison with a from-scratch recomputation")
    pl = add("plan", cmd_plan, "preview what a run would do: steps, batches, blast radius, expected time")
    pl.add_argument("--rerun-months", help="also preview an operator re-run of these comma-separated YYYY-MM")
    pl.add_argument("--retry-failed", action="store_true", help="include batches parked after repeated failures")
    pl.add_argument("--maintain", action="store_true", help="include a maintenance step")
    k = add("check-batch", cmd_check_batch, "check a batch folder (or s3:// prefix) before delivering it")
    k.add_argument("location", help="…/rpt_as_of_mo=YYYY-MM/<batch_id>/ folder or s3:// prefix")
    k.add_argument("--tolerance", type=int, default=1, help="months after the current one still accepted")
    ch = add("changes", cmd_changes, "the amended-history feed: rows backfills and re-runs changed")
    ch.add_argument("--since", required=True, help="ISO date/time (UTC unless it has an offset) or a step id")
    ch.add_argument("--limit", type=int, default=200, help="records printed at most")
    e = add("explain", cmd_explain, "where each history position of a summary row came from (and a check)")
    e.add_argument("--account", type=int, required=True)
    e.add_argument("--month", required=True, help="YYYY-MM")
    s = add("show", cmd_show, "one account's months, grid and arrays")
    s.add_argument("--account", type=int, required=True)
    s.add_argument("--months", help="comma-separated YYYY-MM")
    d = add("demo", cmd_demo, "the seed's Test Case 2 as a story (what `make run` runs)")
    d.add_argument("--keep", action="store_true", help="keep an existing demo folder instead of starting afresh")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, MonthError, ValueError) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

