"""Read some data files of an Iceberg table, and read files as written.

A filter on the ``_file`` metadata column is not pushed into Iceberg's scan planning: Spark
reads every file and drops rows afterwards. To read only known files, their scan tasks (each
with the delete files that apply to it) are planned on the table and staged in Iceberg's
``ScanTaskSetManager``; a read with the ``scan-task-set-id`` option then scans exactly those
tasks, as Iceberg's own file rewrites do (Iceberg 1.10, ``SparkStagedScanBuilder``;
docs/decisions.md, "The checks read the files that hold the touched rows"). Files that no
delete file applies to are read by Spark's own Parquet reader instead (:func:`as_written`).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from functools import reduce
from typing import Any, Iterator, List, Optional, Set, Tuple, Union

from py4j.protocol import Py4JError
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from emr_jobs.tables import iceberg_table

FILE_COLUMN = "_file"  # Iceberg's metadata column: the data file a row was read from
SCAN_TASK_SET_ID = "scan-task-set-id"  # SparkReadOptions.SCAN_TASK_SET_ID
Version = Union[str, int, None]  # a branch's head (its name), a snapshot (its id), or main's head (None)


@contextmanager
def files_of(spark: Any, table: str, branch: Optional[str], files: Set[str], columns: T.StructType,
             partitions: Optional[Tuple[str, List[str]]] = None) -> Iterator[Optional[DataFrame]]:
    """The rows of ``files`` (paths as ``_file`` gives them) in ``table`` at the head of
    ``branch`` (``main`` when None), deletes applied; None when some file is not in that
    version of the table, or this Iceberg cannot stage tasks (the caller reads the table
    whole instead). ``partitions`` (a column and its values) narrows the planning to the
    partitions that hold the files. When no delete file applies to them (a backfill's touched
    rows once it replaced them: the files it appended), Spark's Parquet reader reads them as
    :func:`as_written` does (``columns``: the caller's schema of that version), vectorized and
    split over the cores; Iceberg packs small staged files into one task. The frame must be
    used inside the block (the staged tasks are released when it ends)."""
    jvm = spark._jvm
    try:
        iceberg = iceberg_table(spark, table)
        tasks = _tasks_of(jvm, iceberg, branch, files, partitions)
        plain = _plain_parquet(tasks.iterator()) if tasks is not None and _types_unchanged(iceberg) else None
        manager = jvm.org.apache.iceberg.spark.ScanTaskSetManager.get()
    except (Py4JError, TypeError):  # an Iceberg without these APIs: the whole read is still right
        tasks = None
    if tasks is None:
        yield None
        return
    if plain:
        with _parquet_read(spark, iceberg, branch, columns, plain) as rows:
            yield rows
        return
    set_id = str(uuid.uuid4())
    manager.stageTasks(iceberg, set_id, tasks)
    try:
        yield spark.read.format("iceberg").option(SCAN_TASK_SET_ID, set_id).load(table)
    finally:
        manager.removeTasks(iceberg, set_id)


FIELD_ID_READS = "spark.sql.parquet.fieldId.read.enabled"
PARQUET_FIELD_ID = "parquet.field.id"  # a Spark field's metadata key: the Parquet field it reads


@contextmanager
def as_written(spark: Any, table: str, version: Version, columns: T.StructType,
               partitions: Optional[Tuple[str, List[str]]] = None) -> Iterator[Optional[DataFrame]]:
    """``table``'s rows at ``version`` (within ``partitions``) read by Spark's own Parquet
    reader, which decodes the history arrays vectorized (Iceberg's reader decodes rows holding
    arrays one by one): ~40% less time for the checks' reads, about half for a forward month's
    read of latest_summary (docs/benchmarks.md, seventeenth and eighteenth sections). Only when
    no delete file applies to any data file, so the files hold exactly the rows Iceberg's
    reader returns; columns are matched by Parquet field id, as Iceberg matches them, not by
    name. None otherwise, and for a table whose columns ever changed type (Spark 3.5's reader
    can misread a promoted column matched by id: SPARK-52267): the caller reads through
    Iceberg. ``columns``: the Spark schema of the caller's own read of ``version`` (a
    snapshot's own columns; a branch reads with the table's current ones). Field ids are on for
    reads inside the block (the frame must be used inside it)."""
    try:
        iceberg = iceberg_table(spark, table)
        paths = _plain_parquet_files(spark._jvm, iceberg, version, partitions) if _types_unchanged(iceberg) else None
    except (Py4JError, TypeError):  # an Iceberg without these APIs: the Iceberg read is still right
        paths = None
    if not paths:
        yield None
        return
    with _parquet_read(spark, iceberg, version, columns, paths) as rows:
        yield rows


@contextmanager
def _parquet_read(spark: Any, iceberg: Any, version: Version, columns: T.StructType,
                  paths: List[str]) -> Iterator[DataFrame]:
    """Spark's Parquet reader over ``paths``, columns matched by field id (:func:`as_written`)."""
    before = spark.conf.get(FIELD_ID_READS, None)
    spark.conf.set(FIELD_ID_READS, "true")
    try:
        schema = _with_field_ids(columns, _schema_at(iceberg, version))
        yield spark.read.schema(schema).parquet(*paths)
    finally:
        if before is None:
            spark.conf.unset(FIELD_ID_READS)
        else:
            spark.conf.set(FIELD_ID_READS, before)


def _schema_at(iceberg: Any, version: Version) -> Any:
    """The Iceberg schema of ``version``: a snapshot's own, else the table's current one."""
    snapshot = iceberg.snapshot(version) if isinstance(version, int) else None
    schema_id = None if snapshot is None else snapshot.schemaId()
    return iceberg.schema() if schema_id is None else iceberg.schemas().get(schema_id)


def _plain_parquet_files(jvm: Any, iceberg: Any, version: Version,
                         partitions: Optional[Tuple[str, List[str]]]) -> Optional[List[str]]:
    """The data files of the scan, when each is Parquet with no delete file; else None."""
    with _planned(jvm, iceberg, version, partitions) as walk:
        return _plain_parquet(walk)


def _plain_parquet(walk: Any) -> Optional[List[str]]:
    """The data files of the scan tasks ``walk`` (a Java iterator) gives, when each is Parquet
    with no delete file; else None."""
    paths = []
    while walk.hasNext():
        task = walk.next()
        if not task.deletes().isEmpty() or str(task.file().format()) != "PARQUET":
            return None
        paths.append(str(task.file().location()))
    return paths


def _types_unchanged(iceberg: Any) -> bool:
    """Every schema the table has had gives each of its current columns the current type."""
    fields = list(iceberg.schema().columns())
    for schema in iceberg.schemas().values():  # a Java map, as py4j hands it over
        for field in fields:
            then = schema.findField(field.fieldId())
            if then is not None and not then.type().equals(field.type()):
                return False
    return True


def _with_field_ids(schema: T.StructType, ids: Any) -> T.StructType:
    """``schema`` with each top-level field carrying its field id in the Iceberg schema ``ids``."""
    return T.StructType([T.StructField(f.name, f.dataType, f.nullable,
                                       {**f.metadata, PARQUET_FIELD_ID: int(ids.findField(f.name).fieldId())})
                         for f in schema.fields])


def _tasks_of(jvm: Any, iceberg: Any, branch: Optional[str], files: Set[str],
              partitions: Optional[Tuple[str, List[str]]]) -> Any:
    """The scan tasks (a Java list) of ``files`` at the head of ``branch``; None unless every
    one of them is there."""
    tasks, found = jvm.java.util.ArrayList(), set()
    with _planned(jvm, iceberg, branch, partitions) as walk:
        while walk.hasNext():
            task = walk.next()
            path = str(task.file().location())
            if path in files:
                tasks.add(task)
                found.add(path)
    return tasks if files and found == files else None


def holds_files(spark: Any, table: str, partitions: Tuple[str, List[str]]) -> bool:
    """Whether ``table`` as now committed has a data file in ``partitions`` (a column and its
    values): a look at its manifests, no Spark job. True when this Iceberg cannot tell."""
    try:
        with _planned(spark._jvm, iceberg_table(spark, table), None, partitions) as walk:
            return bool(walk.hasNext())
    except (Py4JError, TypeError):
        return True


@contextmanager
def _planned(jvm: Any, iceberg: Any, version: Version, partitions: Optional[Tuple[str, List[str]]]) -> Iterator[Any]:
    """An iterator (Java) over the file scan tasks at ``version``, within ``partitions``; the
    planning's open manifests are closed when the block ends."""
    scan = iceberg.newScan()
    if isinstance(version, int):
        scan = scan.useSnapshot(version)
    elif version is not None:
        scan = scan.useRef(version)
    if partitions is not None and partitions[1]:
        scan = scan.filter(_any_of(jvm, *partitions))
    planned = scan.planFiles()
    try:
        yield planned.iterator()
    finally:
        planned.close()


def _any_of(jvm: Any, column: str, values: List[str]) -> Any:
    """Iceberg's expression ``column = v1 OR column = v2 ...``."""
    expressions = jvm.org.apache.iceberg.expressions.Expressions
    either = getattr(expressions, "or")  # a Python keyword
    return reduce(either, [expressions.equal(column, value) for value in values])
