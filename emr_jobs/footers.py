"""Parquet footers of a batch's files, read in parallel on the executors.

A production batch is 1,000-10,000 files; reading each footer on the driver, one request at a
time, costs minutes. The paths are listed once on the driver and spread over the executors,
each reading its share of footers with pyarrow (shipped in job-deps.zip, unpacked as ./deps).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Iterable, Iterator, Mapping, Sequence, Tuple

Problem = Tuple[str, str]  # (path, what is wrong with it)


DRIVER_READS_UP_TO = 32  # fewer files than this: a Spark job would cost more than the reads


def footer_problems(spark: Any, paths: Sequence[str], expected: Sequence[str],
                    fs_options: Mapping[str, str]) -> Dict[str, str]:
    """path -> problem, for every file whose footer is unreadable or lacks an expected column."""
    if len(paths) <= DRIVER_READS_UP_TO:
        return dict(check_footers(paths, list(expected), dict(fs_options)))
    context = spark.sparkContext
    slices = min(len(paths), context.defaultParallelism * 4)
    wanted, options = list(expected), dict(fs_options)
    found = context.parallelize(list(paths), slices).mapPartitions(
        lambda part: check_footers(part, wanted, options)).collect()
    return dict(found)


def check_footers(paths: Iterable[str], expected: Sequence[str], fs_options: Mapping[str, str]) -> Iterator[Problem]:
    """Runs on an executor: one footer read per file."""
    _shipped_dependencies_on_path()
    import pyarrow.parquet as pq

    for path in paths:
        filesystem, location = _filesystem(path, fs_options)
        try:
            with filesystem.open_input_file(location) as handle:
                names = set(pq.ParquetFile(handle).schema_arrow.names)
        except Exception as exc:  # a corrupt footer is the batch's fault, and names the file
            yield path, f"unreadable Parquet footer ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            continue
        missing = [c for c in expected if c not in names]
        if missing:
            yield path, f"lacks columns {missing}"


def _filesystem(uri: str, options: Mapping[str, str]) -> Tuple[Any, str]:
    from urllib.parse import urlparse

    from pyarrow import fs

    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        settings: Dict[str, Any] = {k: v for k, v in options.items() if v}
        return fs.S3FileSystem(**settings), parsed.netloc + parsed.path
    if parsed.scheme in ("file", ""):  # Hadoop writes file:/path, pyarrow wants /path
        return fs.LocalFileSystem(), parsed.path
    raise ValueError(f"no file system for {uri!r}")


def _shipped_dependencies_on_path() -> None:
    """On EMR Serverless the executors unpack spark.archives=job-deps.zip#deps in their working
    directory; the driver's entrypoint puts it on sys.path, executors do it here."""
    deps = os.path.abspath("deps")
    if os.path.isdir(deps) and deps not in sys.path:
        sys.path.insert(0, deps)


def s3_options(region: str) -> Dict[str, str]:
    """pyarrow S3 settings of the job: the region is given, so no bucket-region lookup (which
    needs a bucket-wide LIST the job's role does not have) is made."""
    return {"region": region} if region else {}
