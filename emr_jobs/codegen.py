"""Spark's switches between generated code and its interpreted path (both internal settings),
and the scans that turn generated code back on in a step that runs interpreted.

A small step runs interpreted (emr_jobs/summarise.size_step): each new plan over the wide
summary rows otherwise costs a Janino compile that its few rows never win back. A scan of
every row of whole month partitions (or of all of latest_summary) is the exception: there
each row goes through every expression and join one by one, interpreted.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from datadominion.spark_session import settings_kept

WHOLE_STAGE_CODEGEN = "spark.sql.codegen.wholeStage"
CODEGEN_FACTORY = "spark.sql.codegen.factoryMode"
INTERPRETED = "NO_CODEGEN"  # every expression evaluated by Spark's interpreted path
GENERATED = "FALLBACK"  # Spark's default: generated code, interpreted where generating it fails


@contextmanager
def whole_partition_scan(spark: Any, whole: bool = True) -> Iterator[None]:
    """The block's queries scan every row of whole partitions (when ``whole``): in a session
    that runs interpreted they run on generated code, whole-stage too, and the session is
    interpreted again after the block. Only the scans compile: the rest of a small step that
    cannot name its accounts works on the few accounts' rows they pick out (a 1% backfill at
    250k accounts x 24 months, each a fresh process: 35.7-36.7 s against 40.2-45.6 s compiled
    throughout; docs/benchmarks.md, twenty-first section)."""
    if not whole or spark.conf.get(CODEGEN_FACTORY, None) != INTERPRETED:
        yield
        return
    with settings_kept(spark, (WHOLE_STAGE_CODEGEN, CODEGEN_FACTORY)):
        compile_all(spark)
        yield


def compile_all(spark: Any) -> None:
    """The session's queries run on generated code, whole-stage too: Spark's defaults."""
    spark.conf.set(WHOLE_STAGE_CODEGEN, "true")
    spark.conf.set(CODEGEN_FACTORY, GENERATED)
