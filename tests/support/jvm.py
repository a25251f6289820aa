"""The py4j traffic between a test's Python and its Spark driver JVM."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, List

from datadominion import jvm_lookups


@contextmanager
def py4j_requests(spark: Any) -> Iterator[List[int]]:
    """Count the requests sent to ``spark``'s JVM inside the block: ``counted[0]`` (reset it to
    count from a point)."""
    client = spark.sparkContext._gateway._gateway_client
    send = client.send_command
    counted = [0]

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return send(*args, **kwargs)

    client.send_command = counting
    try:
        yield counted
    finally:
        client.send_command = send


def forget_static_lookups(spark: Any) -> None:
    """Undo :func:`jvm_lookups.remember_static_lookups`: pyspark resolves every lookup again."""
    for name in jvm_lookups.STATIC_CLASSES:
        spark.sparkContext._jvm.__dict__.pop(name, None)


def spark_stages(spark: Any) -> List[Any]:
    """The stages in ``spark``'s status store (its newest ones, as many as the store keeps)."""
    context = spark.sparkContext
    gateway = context._gateway
    found = context._jsc.sc().statusStore().stageList(None, False, False, gateway.new_array(gateway.jvm.double, 0),
                                                      None)
    return java_list(found)


def java_list(found: Any) -> List[Any]:
    """The items of a Java collection (e.g. from Spark's status store), as a Python list."""
    iterator, items = found.iterator(), []
    while iterator.hasNext():
        items.append(iterator.next())
    return items


@contextmanager
def records_read(spark: Any) -> Iterator[List[int]]:
    """How many records the Spark stages run inside the block read from their sources
    (``read[0]``, set when the block ends): rows decoded, whatever filters then dropped."""
    before = {stage.stageId() for stage in spark_stages(spark)}
    read = [0]
    yield read
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()  # a stage's last metrics come after the action
    read[0] = sum(stage.inputRecords() for stage in spark_stages(spark) if stage.stageId() not in before)


def scala_list(spark: Any, seq: Any) -> List[Any]:
    """The items of a Scala collection (e.g. from Spark's SQL status store), as a Python list."""
    return java_list(spark._jvm.scala.collection.JavaConverters.seqAsJavaList(seq))
