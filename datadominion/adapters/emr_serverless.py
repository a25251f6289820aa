"""Job runner on EMR Serverless (boto3): submit a step's job run and wait for its end.

Step Functions does the waiting itself (``startJobRun.sync``); this runner is the same
submission for callers outside the state machine (operators' scripts, tests).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from datadominion.job_request import (
    JobSettings,
    job_outcome,
    log_location,
    result_uri,
    start_job_run_request,
    store_step_if_large,
)
from datadominion.jobs import JobOutcome
from datadominion.steps import Step

TERMINAL_STATES = ("SUCCESS", "FAILED", "CANCELLED")


class EmrServerlessJobRunner:
    def __init__(self, client: Any, settings: JobSettings, read_text: Callable[[str], Optional[str]],
                 write_text: Callable[[str, str], None], poll_seconds: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.client, self.settings, self.read_text, self.write_text = client, settings, read_text, write_text
        self.poll_seconds, self.sleep = poll_seconds, sleep

    def submit(self, step: Step) -> str:
        """Start (or, for a client token seen before, find) the step's job run."""
        store_step_if_large(self.settings, step, self.write_text)
        response = self.client.start_job_run(**start_job_run_request(self.settings, step, step.attempt))
        return str(response["jobRunId"])

    def wait(self, job_run_id: str) -> Dict[str, Any]:
        while True:
            run = dict(self.client.get_job_run(applicationId=self.settings.application_id,
                                               jobRunId=job_run_id)["jobRun"])
            if run["state"] in TERMINAL_STATES:
                return run
            self.sleep(self.poll_seconds)

    def run(self, step: Step) -> JobOutcome:
        job_run_id = self.submit(step)
        run = self.wait(job_run_id)
        return job_outcome(job_run_id, str(run["state"]), str(run.get("stateDetails") or ""),
                           log_location(self.settings, job_run_id),
                           self.read_text(result_uri(self.settings, step, step.attempt)))
