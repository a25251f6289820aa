"""`datadominion check-batch`: the validation a delivered batch meets, run by a producer
before delivery: Register's layout and Parquet checks, then the job's schema and row rules
(docs/architecture.md, "The summary job"). Nothing is written to any table.

A local folder or an s3:// prefix (downloaded first: Spark here has no S3 connector) must end
in `rpt_as_of_mo=YYYY-MM/<batch_id>/`, the delivery layout; a `_SUCCESS` marker is not needed.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, List, Tuple
from urllib.parse import urlparse

from datadominion.adapters.local_storage import LocalStorage
from datadominion.config import PipelineConfig
from datadominion.landing import SOURCE_PREFIX, SUCCESS_MARKER, BatchKeyError, BatchRef, parse_marker_key
from datadominion.registration import BatchRejected, check_month, inspect_batch
from datadominion.steps import StepBatch


def check_batch(location: str, spark: Any, tables: Any, config: PipelineConfig, now: datetime,
                tolerance_months: int = 1) -> List[str]:
    """Every problem the batch at ``location`` would be rejected for (empty: it passes)."""
    from emr_jobs.ingest import validated_batches

    with tempfile.TemporaryDirectory(prefix="dd-check-") as tmp:
        try:
            root, ref = _landed(location, Path(tmp))
        except BatchKeyError as exc:
            return [f"{location}: {exc}"]
        storage = LocalStorage(root)
        try:
            check_month(ref, now, tolerance_months)
            inspect_batch(ref, storage)
        except BatchRejected as exc:
            return [f"batch {ref.batch_key} ({location}): {exc}"]
        validated = validated_batches(spark, tables, [StepBatch(ref.month, ref.batch_id, storage.uri(ref.prefix))],
                                      config)
        if validated.scan is not None:
            validated.scan.unpersist()
        return [str(problem) for problem in validated.rejected.values()]


def _landed(location: str, workdir: Path) -> Tuple[Path, BatchRef]:
    """A landing root holding the batch in the accounts_all layout, and the batch's ref."""
    if location.startswith("s3://"):
        parsed = urlparse(location)
        folder = workdir / "download" / parsed.path.strip("/")
        ref = _ref(folder)
        _download(parsed.netloc, parsed.path.strip("/") + "/", workdir / "landing" / ref.prefix)
        return workdir / "landing", ref
    folder = Path(location).resolve()
    ref = _ref(folder)
    if not folder.is_dir():
        raise BatchKeyError(f"{folder} is not a folder")
    if folder.parent.parent.name == SOURCE_PREFIX.rstrip("/"):
        return folder.parent.parent.parent, ref
    shutil.copytree(folder, workdir / "landing" / ref.prefix)
    return workdir / "landing", ref


def _ref(folder: Path) -> BatchRef:
    return parse_marker_key(f"{SOURCE_PREFIX}{folder.parent.name}/{folder.name}/{SUCCESS_MARKER}")


def _download(bucket: str, prefix: str, target: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    target.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            path = target / obj["Key"][len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(path))
