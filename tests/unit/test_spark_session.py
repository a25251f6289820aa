"""The local Spark driver's JVM options (datadominion/spark_session.py)."""

from __future__ import annotations

from datadominion.spark_session import QUIET_LOG4J2, local_driver_java_options


def test_the_local_driver_keeps_its_quiet_logging_and_adds_the_users_jvm_options(monkeypatch):
    monkeypatch.delenv("DATADOMINION_DRIVER_JAVA_OPTIONS", raising=False)
    assert local_driver_java_options() == f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J2}"
    monkeypatch.setenv("DATADOMINION_DRIVER_JAVA_OPTIONS", " -XX:TieredStopAtLevel=1 ")
    assert local_driver_java_options() == f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J2} -XX:TieredStopAtLevel=1"
