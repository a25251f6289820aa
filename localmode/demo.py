"""The seed's Test Case 2 as a story: what `make run` shows a newcomer.

100 accounts x 60 months (2020-01..2024-12, 10% gaps) -> initial load -> late corrections
for accounts 1-3 in 2021-03, 2022-06, 2023-09 (+20,000 past due, +60 days past due,
newer base_ts) -> backfill -> before/after table, later grids, validation.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

from datadominion.config import PipelineConfig
from datadominion.months import add_months

ACCOUNTS, MONTHS, START, GAP_PCT, SEED = 100, 60, "2020-01", 10.0, 42
TARGET_ACCOUNTS = (1, 2, 3)
TARGET_MONTHS = ("2021-03", "2022-06", "2023-09")
PAST_DUE_DELTA, DPD_DELTA = 20_000, 60
CORRECTION_TS = datetime(2025, 2, 1, 9, 0, tzinfo=timezone.utc)


def _snapshot(spark: Any, tables: Any, cfg: PipelineConfig) -> Dict[Tuple[int, str], Any]:
    from pyspark.sql import functions as F

    rows = (spark.table(tables.summary)
            .where(F.col(cfg.key_column).isin(list(TARGET_ACCOUNTS)))
            .select(cfg.key_column, cfg.month_column, "past_due_am", "days_past_due", "payment_history_grid",
                    "days_past_due_history")
            .collect())
    return {(r[0], r[1]): r for r in rows}


def run_demo(home: Path, config: PipelineConfig, say: Callable[[str], None], fresh: bool = True) -> int:
    from emr_jobs.recompute import validate_tables
    from localmode.environment import LocalEnvironment
    from localmode.generator import generate, write_corrections

    started = time.monotonic()
    if fresh and home.exists():
        shutil.rmtree(home)
    say(f"== DataDominion demo: the seed's Test Case 2, in {home}")
    env = LocalEnvironment(home, config)
    written = generate(config, env.landing, ACCOUNTS, MONTHS, START, GAP_PCT, SEED)
    say(f"1. generated {ACCOUNTS} accounts x {MONTHS} months ({START}..{written[-1].ref.month}, "
        f"{GAP_PCT:.0f}% gaps): {sum(w.rows for w in written)} records in {len(written)} landing batches")
    say("2. process: the summary is empty, so every month is one initial load")
    first = env.process(notify=lambda m: say("   " + m))
    if not first.ok:
        say("demo FAILED: the initial load did not complete")
        return 1
    spark, tables = env.runner.session(), env.runner.tables
    before = _snapshot(spark, tables, config)

    say(f"3. late corrections arrive for accounts {list(TARGET_ACCOUNTS)} in {', '.join(TARGET_MONTHS)} "
        f"(+{PAST_DUE_DELTA:,} past due, +{DPD_DELTA} days past due, base_ts {CORRECTION_TS.isoformat()})")
    write_corrections(config, env.landing, TARGET_ACCOUNTS, TARGET_MONTHS, PAST_DUE_DELTA, DPD_DELTA, CORRECTION_TS)
    say("4. process: those months are older than the newest summarised month, so they are a backfill")
    second = env.process(notify=lambda m: say("   " + m))
    if not second.ok:
        say("demo FAILED: the backfill did not complete")
        return 1
    after = _snapshot(spark, tables, config)

    say("5. before / after (the seed's table):")
    say(f"   {'acct':>4s} {'month':8s} {'past_due BEFORE':>15s} {'AFTER':>8s} {'delta':>7s} "
        f"{'dpd BEFORE':>10s} {'AFTER':>6s} {'delta':>6s}  status")
    all_ok = True
    for account in TARGET_ACCOUNTS:
        for month in TARGET_MONTHS:
            b, a = before.get((account, month)), after[(account, month)]
            if b is None:
                say(f"   {account:>4d} {month:8s} {'(gap)':>15s} {a['past_due_am']:>8} {'':>7s} {'(gap)':>10s} "
                    f"{a['days_past_due']:>6} {'':>6s}  row created by the backfill")
                continue
            dp, dd = a["past_due_am"] - b["past_due_am"], a["days_past_due"] - b["days_past_due"]
            ok = (dp, dd) == (PAST_DUE_DELTA, DPD_DELTA)
            all_ok &= ok
            say(f"   {account:>4d} {month:8s} {b['past_due_am']:>15,} {a['past_due_am']:>8,} {dp:>+7,} "
                f"{b['days_past_due']:>10} {a['days_past_due']:>6} {dd:>+6}  {'PASS' if ok else 'FAIL'}")

    say("6. effect on later months: the corrected month's position in each later row's arrays")
    changed_later = 0
    for account in TARGET_ACCOUNTS:
        for month in TARGET_MONTHS:
            for offset in (1, 6, 35):
                later = add_months(month, offset)
                b, a = before.get((account, later)), after.get((account, later))
                if a is None or b is None:
                    continue
                if b["days_past_due_history"] != a["days_past_due_history"]:
                    changed_later += 1
                if account == TARGET_ACCOUNTS[0] and month == TARGET_MONTHS[0]:
                    say(f"   acct {account} {later}: days_past_due_history[{offset}] (= {month}) "
                        f"{b['days_past_due_history'][offset]} -> {a['days_past_due_history'][offset]}; "
                        f"grid {a['payment_history_grid']}")
    history_ok = _later_positions_hold(spark, tables, config)
    say(f"   sampled later rows whose arrays changed: {changed_later}; past_due/dpd history positions of "
        f"every later row within 35 months hold the corrected values: {'yes' if history_ok else 'NO'}")

    say("7. validate: integrity checks + comparison with a from-scratch recomputation")
    problems = validate_tables(spark, tables).problems
    for p in problems[:10]:
        say("   " + p)
    seconds = time.monotonic() - started
    if problems or not all_ok or not history_ok:
        say(f"demo FAILED after {seconds:.0f}s")
        return 1
    say(f"SUCCESS: 9 corrections applied, later history arrays and grids rebuilt, tables equal a "
        f"from-scratch recomputation ({seconds:.0f}s)")
    return 0


def _later_positions_hold(spark: Any, tables: Any, config: PipelineConfig) -> bool:
    """For every corrected (account, month M) and each later row M+k (k<=35) of the account,
    past_due_am_history[k] and days_past_due_history[k] equal the corrected row's values."""
    from pyspark.sql import functions as F

    rows = (spark.table(tables.summary).where(F.col(config.key_column).isin(list(TARGET_ACCOUNTS)))
            .select(config.key_column, config.month_column, "past_due_am", "days_past_due",
                    "past_due_am_history", "days_past_due_history").collect())
    by_key = {(r[0], r[1]): r for r in rows}
    for account in TARGET_ACCOUNTS:
        for month in TARGET_MONTHS:
            corrected = by_key.get((account, month))
            if corrected is None:
                return False
            for k in range(1, config.history_length):
                later = by_key.get((account, add_months(month, k)))
                if later is None:
                    continue
                if (later["past_due_am_history"][k], later["days_past_due_history"][k]) != (
                        corrected["past_due_am"], corrected["days_past_due"]):
                    return False
    return True
