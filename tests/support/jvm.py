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
