"""End to end through the `datadominion` command itself (subprocesses, temporary home)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from emr_jobs.tables import ROW_GROUP_PROPERTY, SUMMARY_ROW_GROUP_BYTES
from tests.support.cli import cli_env, run_cli, start_cli

pytestmark = pytest.mark.spark


def command_env(home: Path, command: str) -> dict:
    """The environment of one `datadominion` command. Each is a JVM of its own over a few
    accounts: without the optimizing compiler (C2) it competes less for the 2 cores; the demo,
    which runs long enough to win from C2, keeps it (docs/benchmarks.md, thirteenth)."""
    quick = {} if command == "demo" else {"DATADOMINION_DRIVER_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}
    return cli_env(home, **quick)


def dd(home: Path, *args: str, check_code: int | None = 0) -> subprocess.CompletedProcess:
    proc = run_cli(home, *args, env=command_env(home, args[0]))
    if check_code is not None:
        assert proc.returncode == check_code, proc.stdout + proc.stderr
    return proc


def start(home: Path, *args: str) -> subprocess.Popen:
    return start_cli(home, *args, env=command_env(home, args[0]))


def home_catalog(home: Path):
    from datadominion.catalog import load_pyiceberg_catalog, local_catalog_settings

    return load_pyiceberg_catalog(local_catalog_settings(home))


def table_state(home: Path):
    catalog = home_catalog(home)
    return tuple(catalog.load_table(f"default.{t}").metadata.current_snapshot_id
                 for t in ("accounts_all", "summary", "latest_summary"))


def test_test_case_2_story(tmp_path):
    out = dd(tmp_path, "demo").stdout
    assert "initial load of 60 month(s)" in out
    assert "backfill" in out
    assert out.count("PASS") + out.count("row created by the backfill") == 9
    assert "FAIL" not in out.replace("FAILED", "")
    assert "SUCCESS:" in out.splitlines()[-1]


def test_lifecycle_duplicates_incomplete_rejected_and_rerun(tmp_path):
    home = tmp_path
    dd(home, "generate", "--accounts", "12", "--months", "4", "--start-month", "2024-01", "--gap-pct", "10")
    landing = home / "landing" / "accounts_all"
    # hold the last month back as an incomplete batch: no _SUCCESS yet
    held = next((landing / "rpt_as_of_mo=2024-04").iterdir())
    (held / "_SUCCESS").unlink()
    first = dd(home, "process")
    out = first.stdout
    assert "initial load of 3 month(s)" in out and "3 batch(es) done" in out
    assert "summarise done in" in out  # each stage reports its elapsed time
    assert "WARN" not in first.stderr and "log level" not in first.stderr, first.stderr  # Spark stays quiet
    # laid out as the job lays summary out on EMR: the local benchmarks measure production's row groups
    summary = home_catalog(home).load_table("default.summary")
    assert summary.properties[ROW_GROUP_PROPERTY] == str(SUMMARY_ROW_GROUP_BYTES)
    assert f"INCOMPLETE accounts_all/rpt_as_of_mo=2024-04/{held.name}/" in dd(home, "status", "--incomplete-after",
                                                                               "0").stdout
    assert "INCOMPLETE" not in dd(home, "status").stdout  # not yet overdue
    state = table_state(home)

    # the same delivery again (marker rewritten) is a duplicate: nothing changes
    marker = next((landing / "rpt_as_of_mo=2024-02").iterdir()) / "_SUCCESS"
    marker.write_bytes(b"")
    out = dd(home, "process").stdout
    assert "0 batch(es) done, 0 rejected" in out
    assert table_state(home) == state

    # a bad batch is rejected with its reason; tables untouched; exit status 1
    bad = landing / "rpt_as_of_mo=2024-03" / "broken"
    bad.mkdir()
    (bad / "part-0.parquet").write_bytes(b"")
    (bad / "_SUCCESS").write_bytes(b"")
    out = dd(home, "process", check_code=1).stdout
    assert "rejected 2024-03/broken: zero-byte Parquet objects" in out
    assert "zero-byte" in json.loads((bad / "_REJECTED.json").read_text())["reason"]
    assert table_state(home) == state

    # the incomplete batch completes; a preview says what a run would do, and changes nothing
    (held / "_SUCCESS").write_bytes(b"")
    preview = dd(home, "plan", "--rerun-months", "2024-02").stdout
    assert "plan preview (nothing locked or written)" in preview
    assert [line.split()[1] for line in preview.splitlines()[2:]] == ["rerun", "forward"]
    assert "2024-02..2024-04" in preview  # the re-run rewrites M..M+35, up to the newest month
    assert table_state(home) == state
    out = dd(home, "process").stdout
    assert "2024-04 is newer than the newest summarised month 2024-03: forward" in out
    state = table_state(home)

    # a re-run recomputes from accounts_all and changes nothing
    out = dd(home, "rerun", "--months", "2024-02,2024-03").stdout
    assert "operator re-run" in out
    assert table_state(home)[1:] == state[1:]
    dd(home, "rerun", "--months", "2024-13", check_code=2)

    # maintenance under the lock: compaction and expiry change no row (validate below)
    out = dd(home, "maintain").stdout
    assert "step maintain" in out and "requested by the operator" in out and "delete files" in out

    assert "validation passed" in dd(home, "validate").stdout
    late = dd(home, "status", "--today", "2024-06-20").stdout  # 2024-05 was due on 2024-06-15
    assert "WARNING month 2024-05 was expected by day 15 of the month after it" in late
    status = dd(home, "status").stdout
    assert "DONE=4" in status and "REJECTED=1" in status and "lock: free" in status
    assert "2024-01..2024-04 (4)" in status  # summary's months, in the tables table
    show = dd(home, "show", "--account", "3").stdout
    assert "payment_rating_cd_history" in show and "2024-04" in show


def test_two_concurrent_process_runs_leave_correct_tables(tmp_path):
    home = tmp_path
    dd(home, "generate", "--accounts", "20", "--months", "3", "--start-month", "2023-01")
    first, second = start(home, "process"), start(home, "process")
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert sum("3 batch(es) done" in o for o in outs) == 1
    assert sum("0 batch(es) done" in o for o in outs) == 1
    assert "validation passed" in dd(home, "validate").stdout
    shutil.rmtree(home / "warehouse", ignore_errors=True)


def test_a_correction_is_announced_listed_in_the_feed_and_explained(tmp_path):
    home = tmp_path
    dd(home, "generate", "--accounts", "6", "--months", "4", "--start-month", "2024-01")
    assert "amended history" not in dd(home, "process").stdout  # an initial load changes no row
    dd(home, "correct", "--accounts", "1,2", "--months", "2024-02", "--base-ts", "2030-01-01T00:00:00")
    out = dd(home, "process").stdout
    assert "amended history: 6 change record(s) (corrected 2, history 4)" in out
    feed = dd(home, "changes", "--since", "2000-01-01").stdout
    assert feed.splitlines()[0].startswith("6 change record(s) since 2000-01-01")
    lines = feed.splitlines()[2:]
    assert sorted((line.split()[3], line.split()[4], line.split()[5]) for line in lines) == sorted(
        (a, m, "corrected" if m == "2024-02" else "history") for a in ("1", "2") for m in ("2024-02", "2024-03",
                                                                                            "2024-04"))
    step = lines[0].split()[1]
    assert "0 change record(s)" in dd(home, "changes", "--since", step).stdout  # nothing after that step
    assert "neither an ISO date/time" in dd(home, "changes", "--since", "soon", check_code=2).stdout
    status = dd(home, "status").stdout.splitlines()
    header = next(line for line in status if "amended rows" in line)
    backfill = next(line for line in status if line.split()[:1] == ["backfill"])
    assert backfill[header.index("amended rows"):].split()[0] == "6"
    assert any(line.split()[:2] == ["summary_changes", "6"] for line in status)

    explained = dd(home, "explain", "--account", "1", "--month", "2024-04").stdout
    assert "every position agrees with the table" in explained
    feb = next(line for line in explained.splitlines() if line.split()[:2] == ["2", "2024-02"])
    correction, original = feb.split()[2], feb.split()[4]
    assert correction != original and correction.startswith("2024-02/") and original.startswith("2024-02/")
    missing = dd(home, "explain", "--account", "99", "--month", "2024-04", check_code=1).stdout
    assert "no summary row and no accounts_all record" in missing
