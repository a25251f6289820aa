"""SparkSession factory for the summary job, local or on EMR Serverless.

Applies the stack facts of docs/decisions.md ("Local Spark", "Catalog"): matching catalog name, no catalog-table
creation from Spark on SQLite, no table cache, UTC session time zone, and an explicit
check that the Iceberg runtime really loaded (a missing jar only warns at start-up).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from datadominion import local_files
from datadominion.catalog import CatalogSettings

SQLITE_JDBC_JAR = Path("/usr/share/java/sqlite-jdbc.jar")
QUIET_LOG4J2 = Path(__file__).with_name("log4j2-local.properties")
# An archive the JVM cannot map (another build, changed jars) is skipped; nothing is printed.
QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"
CLASS_ARCHIVE_PREFIX = "driver-classes-"  # the local driver's class-data archives, one per Java and jars
ICEBERG_JAR_NAME = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"


class SparkStackError(RuntimeError):
    """The local Spark + Iceberg stack is incomplete; the message says what to install."""


def iceberg_runtime_jar() -> Path:
    try:
        import snowpark_connect_deps_iceberg  # type: ignore[import-not-found]
    except ImportError as exc:
        raise SparkStackError(
            "the Iceberg runtime jar is missing: install snowpark-connect-deps-iceberg==1.0.2 (run `make setup`)"
        ) from exc
    jar = Path(snowpark_connect_deps_iceberg.__file__).parent / "jars" / ICEBERG_JAR_NAME
    if not jar.is_file():
        raise SparkStackError(
            f"the Iceberg runtime jar {jar} is missing; reinstall snowpark-connect-deps-iceberg==1.0.2"
        )
    return jar


def java_executable() -> str:
    java = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin") + os.pathsep
                        + os.environ.get("PATH", ""))
    if not java:
        raise SparkStackError(
            "Java 17 is required for Spark but `java` was not found (apt-get install openjdk-17-jre-headless)"
        )
    return java


def check_java() -> None:
    first = java_version()
    if ' version "17' not in first:
        raise SparkStackError(f"Spark 3.5 here is verified with Java 17; found: {first}")


def local_stack_jars() -> list[Path]:
    check_java()
    if not SQLITE_JDBC_JAR.is_file():
        raise SparkStackError(
            f"the SQLite JDBC driver {SQLITE_JDBC_JAR} is missing: apt-get install libxerial-sqlite-jdbc-java"
        )
    return [iceberg_runtime_jar(), SQLITE_JDBC_JAR]


def catalog_spark_conf(settings: CatalogSettings) -> Dict[str, str]:
    prefix = f"spark.sql.catalog.{settings.name}"
    conf = {
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.warehouse": settings.warehouse,
        f"{prefix}.cache-enabled": "false",
        "spark.sql.defaultCatalog": settings.name,
    }
    if settings.kind == "local":
        conf.update({
            f"{prefix}.type": "jdbc",
            f"{prefix}.uri": f"jdbc:sqlite:{settings.sqlite_path}",
            f"{prefix}.jdbc.init-catalog-tables": "false",
        })
    else:
        conf.update({
            f"{prefix}.type": "glue",
            f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        })
    return conf


def base_spark_conf(shuffle_partitions: int) -> Dict[str, str]:
    """The session settings of every session, the job's on EMR and the local one alike."""
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.ansi.enabled": "false",
        # Whole-stage code over the wide array expressions compiles to methods past HotSpot's
        # 8,000-byte JIT limit, which then run in the bytecode interpreter: a 1M-account forward
        # month took 158 s with it, 93 s without (docs/benchmarks.md, eighteenth section).
        # Expressions are still compiled one by one; a small step's scans of whole partitions
        # turn it on for themselves (emr_jobs/codegen.py).
        "spark.sql.codegen.wholeStage": "false",
        # A held frame (a large step's classification) is cached without Spark's column
        # encodings: offering every scalar value to each encoding took up to a third of the
        # classification's stage (1M-account forward month: 23.7-31.3 s of task time, 18.8-20.0
        # without), for a cache 8% smaller: its arrays are not encoded either way
        # (docs/benchmarks.md, nineteenth section).
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
    }


# Local settings that follow from local volumes (the job on EMR keeps Spark's defaults), each
# with why; every other setting that shapes a query is the same in both sessions
# (base_spark_conf), so local measurements stand for the job's.
LOCAL_SCALE_SETTINGS = {
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "16m",  # MBs, not GBs, a step locally
    "spark.sql.ui.retainedExecutions": "20",  # a bounded driver heap for a long local `watch`
}


def local_session_conf(jars: List[Path], file_system_jar: Path) -> Dict[str, str]:
    """The local session's own settings (on top of :func:`base_spark_conf`); ``file_system_jar``
    holds the local file system's classes (datadominion/local_files.py)."""
    return {
        # On the driver's class path, where Hadoop looks a file system up by name.
        "spark.driver.extraClassPath": str(file_system_jar),
        "spark.hadoop.fs.file.impl": local_files.FILE_SYSTEM_CLASS,
        # Spark's start-up warnings (native library, log level hints) stay out of the terminal.
        "spark.driver.extraJavaOptions": local_driver_java_options(),
        "spark.master": os.environ.get("DATADOMINION_SPARK_MASTER", "local[2]"),
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": os.environ.get("DATADOMINION_DRIVER_MEMORY", "4g"),
        "spark.default.parallelism": "4",
        "spark.datadominion.localShufflePartitionCap": "4",
        # The status store keeps finished queries (with their plan text, large for the wide
        # array plans) and jobs even without a UI: bounded, so a long `watch` or a test session
        # does not fill the driver heap.
        "spark.ui.retainedJobs": "200",
        "spark.ui.retainedStages": "200",
        "spark.ui.retainedTasks": "10000",
        **LOCAL_SCALE_SETTINGS,
    }


def local_driver_java_options() -> str:
    """The local driver's JVM options: the quiet log configuration, the class-data archive when
    one was built for this Java and these jars, then any the user adds in
    ``DATADOMINION_DRIVER_JAVA_OPTIONS`` (README, "Local mode")."""
    extra = os.environ.get("DATADOMINION_DRIVER_JAVA_OPTIONS", "").strip()
    archive = class_archive_path()
    use_archive = (f"-XX:SharedArchiveFile={archive} {QUIET_CDS}"
                   if archive is not None and archive.is_file() else "")
    return " ".join(filter(None, (f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J2}", use_archive, extra)))


def class_archive_path() -> Optional[Path]:
    """Where the local driver's class-data archive for this Java and these jars lives (built by
    ``python -m localmode.class_archive``; docs/decisions.md, "Local Spark"), or None when
    ``DATADOMINION_CLASS_ARCHIVE=off``. The name is a digest of the Java version and of every
    jar the driver loads (path, size, time), so a changed stack never maps a stale archive."""
    if os.environ.get("DATADOMINION_CLASS_ARCHIVE", "").lower() == "off":
        return None
    digest = hashlib.sha256(java_version().encode())
    digest.update(str(local_file_system_jar_path()).encode())  # named by its own sources' digest
    for jar in sorted(spark_classpath_jars()) + [iceberg_runtime_jar(), SQLITE_JDBC_JAR]:
        stat = jar.stat() if jar.is_file() else None
        digest.update(f"{jar}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}".encode())
    return cache_folder() / f"{CLASS_ARCHIVE_PREFIX}{digest.hexdigest()[:16]}.jsa"


def cache_folder() -> Path:
    """The user's cache folder for what local sessions build once (the class-data archive, the
    local file system's classes)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "datadominion"


def local_file_system_jar_path() -> Path:
    return local_files.jar_path(cache_folder(), spark_jars_folder())


def local_file_system_jar() -> Path:
    """The local file system's classes in the user's cache, compiled first when missing."""
    return local_files.ensure_jar(java_executable(), cache_folder(), spark_jars_folder())


def spark_classpath_jars() -> list[Path]:
    return list(spark_jars_folder().glob("*.jar"))


def spark_jars_folder() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


@functools.lru_cache(maxsize=1)
def java_version() -> str:
    """``java -version``'s first line (it names the exact build an archive belongs to)."""
    out = subprocess.run([java_executable(), "-version"], capture_output=True, text=True, check=False).stderr
    return out.splitlines()[0] if out else "unknown"


def build_spark_session(
    settings: CatalogSettings,
    app_name: str = "datadominion-summary",
    shuffle_partitions: int = 16,
    extra_conf: Optional[Dict[str, str]] = None,
) -> Any:
    """Create (or return) the SparkSession wired to the catalog, and prove Iceberg loaded."""
    from pyspark.sql import SparkSession

    from datadominion.jvm_lookups import remember_static_lookups  # py4j: not in the Lambdas' asset

    builder = SparkSession.builder.appName(app_name)
    conf = {**base_spark_conf(shuffle_partitions), **catalog_spark_conf(settings)}
    if settings.kind == "local":
        # Make sure pyiceberg created the catalog tables first (see catalog.py).
        from datadominion.catalog import load_pyiceberg_catalog

        load_pyiceberg_catalog(settings)
        jars = local_stack_jars()
        # Python workers run this interpreter (its packages, e.g. pyarrow for the footer checks);
        # PySpark reads the variable when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no "hostname resolves to a loopback" warning
        conf.update(local_session_conf(jars, local_file_system_jar()))
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    remember_static_lookups(spark)
    verify_iceberg(spark, settings)
    return spark


def verify_iceberg(spark: Any, settings: CatalogSettings) -> str:
    try:
        return str(spark.sql(f"SELECT {settings.name}.system.iceberg_version()").first()[0])
    except Exception as exc:  # the jar is absent or broken: Spark only warned at start-up
        raise SparkStackError(
            f"Iceberg is not usable in this Spark session ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            f"check that {ICEBERG_JAR_NAME} is on spark.jars"
        ) from exc


@contextmanager
def settings_kept(spark: Any, names: Sequence[str]) -> Iterator[None]:
    """The session's settings ``names`` as they were before the block, when it ends (failed
    or not): what a step or one of its queries sets for itself."""
    before = {name: spark.conf.get(name, None) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                spark.conf.unset(name)
            else:
                spark.conf.set(name, value)
