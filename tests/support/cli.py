"""The `datadominion` command run as a user runs it: a process (and a JVM) of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from tests.support.paths import REPO


def cli_env(home: Path, **extra: str) -> Dict[str, str]:
    """The environment of a command over ``home`` (``extra``: more variables)."""
    return dict(os.environ, DATADOMINION_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", **extra)


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "localmode.cli", *args]


def run_cli(home: Path, *args: str, env: Optional[Dict[str, str]] = None,
            **options: Any) -> subprocess.CompletedProcess:
    """Run one command to its end, its output captured as text (``env``: instead of
    :func:`cli_env`'s; ``options``: more of subprocess.run's)."""
    return subprocess.run(cli_argv(*args), env=env or cli_env(home), cwd=REPO, capture_output=True, text=True,
                          **{"timeout": 600, **options})


def start_cli(home: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start one command; its output and errors on one text pipe."""
    return subprocess.Popen(cli_argv(*args), env=env or cli_env(home), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
