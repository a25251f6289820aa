"""The local driver's class-data archive (localmode/class_archive.py): recorded once, mapped by
every later command's JVM, and a failed recording leaves nothing behind."""

from __future__ import annotations

import pytest

from localmode.class_archive import ArchiveError, ensure
from tests.support.cli import cli_env, run_cli

pytestmark = pytest.mark.spark

FROM_ARCHIVE = "source: shared objects file (top)"  # -Xlog:class+load for a class mapped from it


def test_a_command_maps_spark_and_iceberg_classes_from_the_recorded_archive(tmp_path):
    archive = ensure()
    assert archive is not None and archive.is_file()
    loaded = tmp_path / "classes.log"
    home = tmp_path / "home"
    logged = cli_env(home, DATADOMINION_DRIVER_JAVA_OPTIONS=f"-Xlog:class+load=info:file={loaded}")
    done = run_cli(home, "validate", env=logged)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = loaded.read_text().splitlines()
    for name in ("org.apache.spark.SparkContext", "org.apache.iceberg.spark.SparkCatalog"):
        assert [line for line in lines if f" {name} {FROM_ARCHIVE}" in line], name


def test_a_failed_recording_says_why_and_leaves_no_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("DATADOMINION_CLASS_ARCHIVE", raising=False)
    monkeypatch.setenv("DATADOMINION_SPARK_MASTER", "no-such-master")  # the story's session cannot start
    with pytest.raises(ArchiveError, match="Master must either be"):  # Spark says why
        ensure()
    assert not list((tmp_path / "datadominion").glob("driver-classes-*"))  # no archive, whole or partial
