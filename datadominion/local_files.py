"""The local session's file system: Hadoop's, without a process per file created.

Without Hadoop's native library (pyspark ships none) Hadoop's local file system sets each new
file's permission by starting `chmod`: two processes for every data file (its checksum is
another file), manifest and metadata file a step writes, ~3 ms each on the local driver. The
job on EMR writes through Iceberg's S3FileIO and never meets it. The two small classes in
datadominion/java/ set the permission through java.io instead; they are compiled once per
source and Hadoop version by the Janino compiler pyspark ships (so a Java runtime suffices, no
JDK) into the user's cache (docs/decisions.md, "Local files").
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import List, Tuple

SOURCES = Path(__file__).with_name("java")
FILE_SYSTEM_CLASS = "datadominion.local.LocalFileSystemWithoutShell"
JAR_PREFIX = "local-files-"
# Janino's command-line compiler, and what the sources compile against (pyspark's jars).
COMPILER_MAIN = "org.codehaus.commons.compiler.samples.CompilerDemo"
COMPILER_JARS = ("janino-*.jar", "commons-compiler-[0-9]*.jar")
COMPILED_AGAINST = ("hadoop-client-api-*.jar", "slf4j-api-*.jar")


class LocalFilesError(RuntimeError):
    """The local file system's classes could not be compiled; the message has the compiler's output."""


def sources() -> List[Path]:
    return sorted(SOURCES.glob("*.java"))


def jar_path(cache: Path, spark_jars: Path) -> Path:
    """Where the compiled classes live: named by a digest of the sources and of the jars they
    compile against, so an edited source or another Hadoop never loads stale classes."""
    digest = hashlib.sha256()
    for path in sources() + _jars(spark_jars, COMPILED_AGAINST):
        digest.update(path.name.encode() + path.read_bytes() if path.suffix == ".java" else str(path).encode())
    return cache / f"{JAR_PREFIX}{digest.hexdigest()[:16]}.jar"


def ensure_jar(java: str, cache: Path, spark_jars: Path) -> Path:
    """The compiled classes, compiled first when they are missing. Whole or absent: two
    commands starting at once each compile to a file of their own and rename it into place."""
    jar = jar_path(cache, spark_jars)
    if jar.is_file():
        return jar
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="datadominion-local-files-") as out:
        command = [java, "-cp", os.pathsep.join(map(str, _jars(spark_jars, COMPILER_JARS))), COMPILER_MAIN,
                   "-classpath", os.pathsep.join(map(str, _jars(spark_jars, COMPILED_AGAINST))), "-d", out,
                   *map(str, sources())]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        classes = sorted(Path(out).rglob("*.class"))
        if done.returncode != 0 or len(classes) != len(sources()):
            raise LocalFilesError(f"compiling {SOURCES} failed (exit {done.returncode}): "
                                  f"{(done.stdout + done.stderr).strip()[:2000]}")
        partial = jar.with_name(f"{jar.name}.{os.getpid()}.partial")
        try:
            with zipfile.ZipFile(partial, "w") as archive:
                for path in classes:
                    archive.write(path, path.relative_to(out).as_posix())
            os.replace(partial, jar)
        finally:
            partial.unlink(missing_ok=True)  # a failed write leaves nothing behind
    return jar


def _jars(folder: Path, patterns: Tuple[str, ...]) -> List[Path]:
    found = [next(iter(sorted(folder.glob(pattern))), None) for pattern in patterns]
    missing = [pattern for pattern, jar in zip(patterns, found) if jar is None]
    if missing:
        raise LocalFilesError(f"pyspark's jars in {folder} lack {', '.join(missing)}: reinstall pyspark (`make setup`)")
    return [jar for jar in found if jar is not None]
