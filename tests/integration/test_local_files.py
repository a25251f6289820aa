"""The local file system's classes, compiled by pyspark's Janino, and the processes they do not start
(datadominion/local_files.py)."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from datadominion import local_files
from datadominion.spark_session import java_executable, local_file_system_jar, spark_jars_folder


@pytest.fixture
def counted_chmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A `chmod` first on the PATH that logs each start, then runs the real one; yields the log."""
    folder, log = tmp_path / "bin", tmp_path / "chmod.log"
    folder.mkdir()
    real = shutil.which("chmod")
    assert real, "no chmod on the PATH"
    (folder / "chmod").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    (folder / "chmod").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    yield log


def _starts(log: Path) -> List[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_files_are_created_without_starting_chmod_where_hadoops_own_starts_one_per_file(
        tmp_path, counted_chmod):
    """The process count itself, in a JVM of its own whose PATH finds a counting `chmod`:
    Hadoop's local file system (the control) starts one per file it creates, a data file and
    its checksum; the local session's starts none."""
    from pyspark import SparkConf
    from pyspark.java_gateway import launch_gateway

    gateway = launch_gateway(SparkConf().set("spark.driver.extraClassPath", str(local_file_system_jar())))
    try:
        jvm = gateway.jvm

        def create(fs: Any, name: str) -> None:
            fs.initialize(jvm.java.net.URI("file:///"), jvm.org.apache.hadoop.conf.Configuration())
            fs.create(jvm.org.apache.hadoop.fs.Path(f"file://{tmp_path}/{name}"), True).close()

        create(jvm.org.apache.hadoop.fs.LocalFileSystem(), "hadoops.bin")
        hadoops = _starts(counted_chmod)
        create(jvm.datadominion.local.LocalFileSystemWithoutShell(), "ours.bin")
        ours = _starts(counted_chmod)[len(hadoops):]
    finally:
        gateway.shutdown()
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=60)
    assert [line.rsplit("/", 1)[-1] for line in hadoops] == ["hadoops.bin", ".hadoops.bin.crc"]
    assert ours == []
    assert (tmp_path / "ours.bin").is_file() and (tmp_path / ".ours.bin.crc").is_file()


def test_the_classes_are_compiled_once_and_named_for_their_sources(tmp_path, monkeypatch):
    jar = local_files.ensure_jar(java_executable(), tmp_path, spark_jars_folder())
    assert sorted(zipfile.ZipFile(jar).namelist()) == [f"datadominion/local/{name}.class" for name in (
        "LocalFileSystemWithoutShell", "RawLocalFileSystemWithoutShell")]
    compiled = jar.stat().st_mtime_ns
    assert local_files.ensure_jar(java_executable(), tmp_path, spark_jars_folder()) == jar
    assert jar.stat().st_mtime_ns == compiled  # not compiled again
    edited = tmp_path / "java"
    edited.mkdir()
    for source in local_files.sources():
        (edited / source.name).write_text(source.read_text() + "\n// edited\n")
    monkeypatch.setattr(local_files, "SOURCES", edited)
    assert local_files.jar_path(tmp_path, spark_jars_folder()) != jar
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".jar"] == [jar.name]  # nothing half-written


def test_a_source_that_does_not_compile_is_named_and_leaves_no_jar(tmp_path, monkeypatch):
    broken = tmp_path / "java"
    broken.mkdir()
    (broken / "Broken.java").write_text("package datadominion.local; public class Broken { int x = ; }\n")
    monkeypatch.setattr(local_files, "SOURCES", broken)
    cache = tmp_path / "cache"
    with pytest.raises(local_files.LocalFilesError, match=f"compiling {broken} failed"):
        local_files.ensure_jar(java_executable(), cache, spark_jars_folder())
    assert not list(cache.glob("*"))


def test_missing_compiler_jars_are_named(tmp_path):
    with pytest.raises(local_files.LocalFilesError, match=r"lack hadoop-client-api-\*\.jar.*make setup"):
        local_files.ensure_jar(java_executable(), tmp_path / "cache", tmp_path)
