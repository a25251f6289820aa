"""Job runner that runs the summary job in this process on a local SparkSession."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from datadominion.catalog import CatalogSettings
from datadominion.config import PipelineConfig
from datadominion.jobs import FAILED, SUCCESS, JobOutcome
from datadominion.steps import Step


class LocalSparkJobRunner:
    def __init__(self, settings: CatalogSettings, config: PipelineConfig, latest_buckets: int = 4,
                 spark_conf: Optional[Dict[str, str]] = None):
        """``spark_conf``: settings the session adds to the local ones (a benchmark's, say)."""
        self.settings, self.config, self.latest_buckets = settings, config, latest_buckets
        self.spark_conf = dict(spark_conf or {})
        self._spark: Any = None
        self._tables: Any = None
        self.progress: Optional[Callable[[str], None]] = None  # hears each stage of a running step

    def session(self) -> Any:
        """The SparkSession, started on first use (with the tables created)."""
        if self._spark is None:
            from datadominion.spark_session import build_spark_session
            from emr_jobs.tables import Tables, create_tables

            self._spark = build_spark_session(self.settings, extra_conf=self.spark_conf)
            self._tables = Tables(self.settings.name, self.config)
            create_tables(self._spark, self._tables, self.latest_buckets)
        return self._spark

    @property
    def tables(self) -> Any:
        self.session()
        return self._tables

    def run(self, step: Step) -> JobOutcome:
        from emr_jobs.ingest import BatchValidationError
        from emr_jobs.summary_job import run_step

        spark = self.session()
        job_run_id = f"local-{step.step_id[:12]}"
        meter = _Meter(spark)
        try:
            report = run_step(spark, self._tables, step, progress=self.progress)
        except BatchValidationError as exc:
            return JobOutcome(FAILED, job_run_id, str(exc), rejected={exc.batch.batch_key: str(exc)},
                              usage=meter.usage())
        except Exception as exc:  # any other failure: the step is retried by a later run
            detail = f"{type(exc).__name__}: {exc}".strip()
            return JobOutcome(FAILED, job_run_id, detail[:4000], report={"traceback": traceback.format_exc()[-4000:]},
                              usage=meter.usage())
        return JobOutcome(SUCCESS, job_run_id, report=report.as_dict(), rejected=dict(report.rejected),
                          usage=meter.usage())


class _Meter:
    """A local step's cost: wall time, and CPU time of the Spark JVM and this process."""

    def __init__(self, spark: Any) -> None:
        self.pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
        self.wall, self.cpu = time.monotonic(), self._cpu()

    def _cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks + time.process_time()  # utime + stime

    def usage(self) -> Dict[str, float]:
        return {"wall_seconds": round(time.monotonic() - self.wall, 3), "cpu_seconds": round(self._cpu() - self.cpu, 3)}
