from datadominion.catalog import load_pyiceberg_catalog
from datadominion.spark_session import verify_iceberg
from tests.support.jvm import py4j_requests


def test_spark_iceberg_table_is_read_back_by_pyiceberg(spark, catalog_settings):
    assert verify_iceberg(spark, catalog_settings).startswith("1.10")
    spark.sql("CREATE NAMESPACE IF NOT EXISTS datadominion.stack")
    spark.sql("CREATE TABLE IF NOT EXISTS datadominion.stack.t (k BIGINT, m STRING) USING iceberg PARTITIONED BY (m)")
    spark.sql("INSERT INTO datadominion.stack.t VALUES (1, '2024-01'), (2, '2024-02')")
    table = load_pyiceberg_catalog(catalog_settings).load_table("stack.t")
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["k"]) == [
        {"k": 1, "m": "2024-01"}, {"k": 2, "m": "2024-02"}]
    assert sorted(p["partition"]["m"] for p in table.inspect.partitions().to_pylist()) == ["2024-01", "2024-02"]
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def _round_trips(spark, build):
    """How many py4j requests ``build()`` sends to the JVM after its first run (a first run
    looks its static methods up)."""
    build()
    with py4j_requests(spark) as sent:
        build()
    return sent[0]


def test_a_column_costs_one_py4j_round_trip_once_the_session_is_built(spark):
    """The session resolves pyspark's per-column JVM lookups once (datadominion/jvm_lookups.py):
    a column by name, a literal and a conditional are each one request, not three."""
    from pyspark.sql import functions as F

    assert _round_trips(spark, lambda: F.col("x")) == 1
    assert _round_trips(spark, lambda: F.lit(7)) == 1
    assert _round_trips(spark, lambda: F.when(F.col("x") > 1, 2)) == 3  # col, >, when
    rows = spark.range(4).select(F.when(F.col("id") > 1, F.lit("big")).otherwise("small").alias("size")).collect()
    assert [r.size for r in rows] == ["small", "small", "big", "big"]


def test_remembered_methods_keep_static_methods_and_read_fields_anew(spark):
    from datadominion.jvm_lookups import RememberedMethods

    integer = RememberedMethods("java.lang.Integer", spark.sparkContext._gateway._gateway_client)
    assert integer.parseInt("41") + 1 == 42
    assert "parseInt" in integer.__dict__ and _round_trips(spark, lambda: integer.parseInt("7")) == 1
    assert integer.MAX_VALUE == 2_147_483_647 and "MAX_VALUE" not in integer.__dict__


def test_remembering_lookups_twice_or_of_a_class_the_jvm_lacks_changes_nothing(spark, monkeypatch):
    from datadominion import jvm_lookups

    view = spark.sparkContext._jvm
    before = view.__dict__["functions"]
    monkeypatch.setattr(jvm_lookups, "STATIC_CLASSES", ("functions", "NoSuchClassAnywhere"))
    jvm_lookups.remember_static_lookups(spark)
    assert view.__dict__["functions"] is before and "NoSuchClassAnywhere" not in view.__dict__


def test_the_local_file_system_creates_files_without_a_process_and_sets_permissions(spark, tmp_path):
    """Hadoop's local file system started `chmod` for every file it created (no native library
    in pyspark): the local session's sets the permission through java.io, never looser than
    asked (group and others get a bit only when both have it; datadominion/local_files.py)."""
    from datadominion.local_files import FILE_SYSTEM_CLASS

    jvm = spark.sparkContext._jvm
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), spark._jsc.hadoopConfiguration())
    assert fs.getClass().getName() == FILE_SYSTEM_CLASS
    path = jvm.org.apache.hadoop.fs.Path(f"file://{tmp_path}/f.bin")
    fs.create(path, True).close()
    modes = {}
    for asked in ("644", "600", "755", "700", "640", "604", "000"):
        fs.setPermission(path, jvm.org.apache.hadoop.fs.permission.FsPermission(asked))
        modes[asked] = oct((tmp_path / "f.bin").stat().st_mode & 0o777)[2:].zfill(3)
    assert modes == {"644": "644", "600": "600", "755": "755", "700": "700", "640": "600", "604": "600", "000": "000"}
    assert spark.range(3).count() == 3
