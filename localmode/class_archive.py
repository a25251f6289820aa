"""The local driver's class-data archive (docs/decisions.md, "Local Spark").

Every `datadominion` command is a JVM of its own that loads Spark's and Iceberg's classes
before its first query. The JVM can record the classes a run loaded into an archive at exit
(``-XX:ArchiveClassesAtExit``, Java 13+) and map them from it at the next start
(``-XX:SharedArchiveFile``). ``python -m localmode.class_archive`` (run by ``make setup``)
records one for this Java and these jars by running a small local story in a fresh process,
unless one is there already; every later local session maps it
(``spark_session.local_driver_java_options``). Without an archive everything works as before,
only slower to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from datadominion.spark_session import CLASS_ARCHIVE_PREFIX, QUIET_CDS, class_archive_path

UNUSED_DAYS = 14

# Two accounts' first month, summarised and validated: Spark's and Iceberg's start-up, a
# step's writes and checks. A longer story (a correction's MERGEs, the feed) took 63 s to
# record against ~50 and gained nothing measurable; `validate` alone took 30 s but left a
# small `process` ~1 s slower (docs/benchmarks.md, fourteenth).
STORY: List[List[str]] = [
    ["generate", "--accounts", "2", "--months", "1", "--start-month", "2024-01"],
    ["process"],
    ["validate"],
]


def ensure(timeout_seconds: float = 900) -> Optional[Path]:
    """The archive for this Java and these jars, recorded first if it is missing; None when
    archives are turned off (``DATADOMINION_CLASS_ARCHIVE=off``)."""
    path = class_archive_path()
    if path is None or path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with tempfile.TemporaryDirectory(prefix="datadominion-classes-") as home:
        env = dict(os.environ, DATADOMINION_CLASS_ARCHIVE="off",
                   DATADOMINION_DRIVER_JAVA_OPTIONS=f"-XX:ArchiveClassesAtExit={partial} {QUIET_CDS}")
        # Output is read to its end: the JVM (which holds the pipe) has then written the archive and exited.
        done = subprocess.run([sys.executable, "-m", "localmode.class_archive", "--story", home], env=env,
                              capture_output=True, text=True, timeout=timeout_seconds, check=False)
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise ArchiveError(f"recording the class-data archive {path} failed (exit {done.returncode}):\n"
                           f"{_clipped(done.stdout + done.stderr)}")
    os.replace(partial, path)  # whole or absent: a command never maps a half-written archive
    prune_unused(path)
    return path


def prune_unused(kept: Path, days: float = UNUSED_DAYS) -> List[Path]:
    """Delete the other archives in ``kept``'s folder that no JVM has mapped for ``days``
    (another checkout's, an old pyspark's): each is ~180 MB. Mapping one reads it, so its
    access time says when it was last used (where access times are not kept, an archive in
    use is at worst recorded again). Returns what was deleted."""
    cutoff = time.time() - days * 86400
    stale = [p for p in kept.parent.glob(f"{CLASS_ARCHIVE_PREFIX}*.jsa") if p != kept and p.stat().st_atime < cutoff]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _clipped(output: str, keep: int = 3000) -> str:
    """The output's start (where Java says why it stopped) and end (Python's traceback)."""
    return output if len(output) <= 2 * keep else f"{output[:keep]}\n[...]\n{output[-keep:]}"


class ArchiveError(RuntimeError):
    """Recording the archive failed; the message carries the story's output."""


def run_story(home: str) -> int:
    """The story, in this process (one JVM): what the archive records."""
    from localmode.cli import main as cli

    for command in STORY:
        code = cli(["--home", home, *command])
        if code != 0:
            return code
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--story"]:
        return run_story(args[1])
    try:
        path = ensure()
    except (ArchiveError, OSError, subprocess.SubprocessError) as exc:
        # Setup goes on: commands start without an archive, only slower.
        print(f"warning: {exc}", file=sys.stderr)
        return 0
    print(f"class-data archive: {path}" if path else "class-data archive: off (DATADOMINION_CLASS_ARCHIVE=off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
