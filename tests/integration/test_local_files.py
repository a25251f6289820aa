"""The local file system's classes, compiled by pyspark's Janino (datadominion/local_files.py)."""

from __future__ import annotations

import zipfile

import pytest

from datadominion import local_files
from datadominion.spark_session import java_executable, spark_jars_folder


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
