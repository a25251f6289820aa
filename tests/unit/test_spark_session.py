"""The local Spark driver's JVM options and session settings (datadominion/spark_session.py)."""

from __future__ import annotations

import os
import re

import pytest

from datadominion import spark_session
from datadominion.spark_session import QUIET_CDS, QUIET_LOG4J2, class_archive_path, local_driver_java_options

LOG = f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J2}"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder of the user's (no class-data archive in it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("DATADOMINION_CLASS_ARCHIVE", raising=False)
    monkeypatch.delenv("DATADOMINION_DRIVER_JAVA_OPTIONS", raising=False)
    return tmp_path


def test_the_local_driver_keeps_its_quiet_logging_and_adds_the_users_jvm_options(cache, monkeypatch):
    assert local_driver_java_options() == LOG
    monkeypatch.setenv("DATADOMINION_DRIVER_JAVA_OPTIONS", " -XX:TieredStopAtLevel=1 ")
    assert local_driver_java_options() == f"{LOG} -XX:TieredStopAtLevel=1"


def test_the_driver_maps_the_class_archive_only_when_there_is_one_and_archives_are_on(cache, monkeypatch):
    archive = class_archive_path()
    assert archive is not None and archive.parent == cache / "datadominion"
    archive.parent.mkdir()
    archive.write_bytes(b"recorded")
    monkeypatch.setenv("DATADOMINION_DRIVER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")
    assert local_driver_java_options() == f"{LOG} -XX:SharedArchiveFile={archive} {QUIET_CDS} -XX:TieredStopAtLevel=1"
    monkeypatch.setenv("DATADOMINION_CLASS_ARCHIVE", "off")
    assert class_archive_path() is None
    assert local_driver_java_options() == f"{LOG} -XX:TieredStopAtLevel=1"


def test_the_archive_is_named_for_the_jars_so_a_changed_jar_never_maps_a_stale_one(cache, tmp_path, monkeypatch):
    jars = [tmp_path / "spark-core.jar", tmp_path / "spark-sql.jar"]
    for jar in jars:
        jar.write_bytes(b"classes")
    monkeypatch.setattr(spark_session, "spark_classpath_jars", lambda: list(jars))
    names = [class_archive_path(), class_archive_path()]
    jars[1].write_bytes(b"other classes")  # reinstalled: another size
    names.append(class_archive_path())
    os.utime(jars[1], ns=(1, 1))  # the same size, another time
    names.append(class_archive_path())
    jars.append(tmp_path / "spark-extra.jar")
    jars[2].write_bytes(b"")
    names.append(class_archive_path())
    assert names[0] == names[1] and len(set(names)) == 4


def test_the_local_session_shapes_queries_as_the_job_on_emr_does():
    """Local measurements stand for the job's: every setting that shapes a query (``spark.sql.*``)
    is the same in the local session and in the job's on EMR (both build on base_spark_conf),
    but those declared to follow from local volumes; and the job's submit parameters agree with
    base_spark_conf where they repeat it. A local-only ``spark.sql.codegen.wholeStage=false``
    once hid that on EMR a forward month's shift compiled to methods too large for the JIT."""
    from datadominion.job_request import JobSettings, spark_submit_parameters

    local = spark_session.local_session_conf([], spark_session.local_file_system_jar_path())
    assert {k for k in local if k.startswith("spark.sql.")} == set(spark_session.LOCAL_SCALE_SETTINGS)
    base = spark_session.base_spark_conf(16)
    assert base["spark.sql.codegen.wholeStage"] == "false"
    assert base["spark.sql.inMemoryColumnarStorage.compressed"] == "false"  # a held frame's cost, both sessions
    settings = JobSettings(application_id="a", execution_role_arn="arn:aws:iam::123456789012:role/job",
                           entry_point="s3://art/e.py", py_files="s3://art/j.zip", dependencies="s3://art/d.zip",
                           config_uri="s3://art/p.json", warehouse="s3://wh/", log_uri="s3://logs/",
                           result_prefix="s3://art/r/", timeout_minutes=90, tags={}, region="ap-south-1",
                           log_group="/aws/emr-serverless/x")
    submitted = dict(pair.split("=", 1) for pair in re.findall(r"--conf (\S+)", spark_submit_parameters(settings)))
    assert {k: v for k, v in submitted.items() if k in base} == {k: base[k] for k in submitted if k in base}
