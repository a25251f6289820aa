"""The synthesized state machine, executed by moto's interpreter with the real handlers.

The only change to the definition is the lock poll: its Wait is cut from 60 s to 1 s.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Tuple

import pytest
import requests

from datadominion.ledger import DONE, FAILED, REGISTERED
from infra.naming import LOCK_POLL_SECONDS
from tests.support.aws import (
    ACCOUNT,
    REGION,
    FakeLambdaContext,
    land,
    ledger,
    put_json,
    s3_object_created_event,
    summary_table_with_months,
)
from tests.support.iam import CallRecorder, Deployment, check_calls
from tests.support.requests import problems
from tests.support.state_machine import (
    FakeEmrServerless,
    function_arn,
    resolve,
    routed,
    s3_location,
    states_entered,
    wait_for,
)


class Pipeline:
    """One moto account running the dev state machine, with a fake EMR that plays the job."""

    def __init__(self, aws: Any, template: Dict[str, Any]):
        import boto3

        self.aws = aws
        self.sfn = boto3.client("stepfunctions", endpoint_url=aws.endpoint, region_name=REGION)
        self.sns = boto3.client("sns", endpoint_url=aws.endpoint, region_name=REGION)
        self.sqs = boto3.client("sqs", endpoint_url=aws.endpoint, region_name=REGION)
        self.fail_months: set = set()
        self.emr = FakeEmrServerless(self._play_job)
        self._execution_number = 0
        topic_arn = self.sns.create_topic(Name="alerts")["TopicArn"]
        queue_url = self.sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.queue_url = queue_url
        refs = {lid: function_arn(lid) for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::Lambda::Function"}
        refs.update({lid: topic_arn for lid, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"})
        [machine] = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
        definition = json.loads(resolve(machine["Properties"]["DefinitionString"], refs))
        assert definition["States"]["WaitForLock"]["Seconds"] == LOCK_POLL_SECONDS
        definition["States"]["WaitForLock"]["Seconds"] = 1
        self.arn = self.sfn.create_state_machine(
            name="datadominion-dev", definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/datadominion-states")["stateMachineArn"]

    def _play_job(self, step: Dict[str, Any], result_uri: str) -> Tuple[str, str]:
        """What the summary job leaves behind that the launcher can see: the result object and,
        on success, the step's months in the summary table's metadata."""
        bucket, key = s3_location(result_uri)
        if set(step["months"]) & self.fail_months:
            put_json(self.aws.s3, bucket, key, {"state": "FAILED", "detail": "ExecutorLostFailure (simulated)"})
            return "FAILED", "Job failed, ExitCode: 1"
        if step["mode"] != "rerun":
            table = summary_table(self.aws)
            import pyarrow as pa

            for month in step["months"]:
                table.append(pa.table({"cons_acct_key": pa.array([1], pa.int64()), "rpt_as_of_mo": [month]}))
        report: Dict[str, Any] = {"months": step["months"]}
        if step["mode"] == "backfill":  # a late month amends rows readers may have seen
            report["changes"] = {"table": f"{self.aws.database}.summary_changes", "records": 3,
                                 "by_kind": {"corrected": 1, "history": 2}, "snapshot_id": 77}
        put_json(self.aws.s3, bucket, key, {"state": "SUCCESS", "report": report})
        return "SUCCESS", ""

    def start(self, payload: Dict[str, Any]) -> str:
        self._execution_number += 1
        return str(self.sfn.start_execution(stateMachineArn=self.arn, name=f"exec-{self._execution_number}",
                                            input=json.dumps(payload))["executionArn"])

    def run(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        return wait_for(self.sfn, self.start(payload))

    def notifications(self) -> List[str]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"])["Message"] for m in messages]

    def job_steps(self) -> List[Tuple[str, List[str]]]:
        return [(run["Step"]["mode"], run["Step"]["months"]) for run in self.emr.jobs]


def summary_table(aws: Any) -> Any:
    from pyiceberg.exceptions import NoSuchTableError

    from datadominion.catalog import glue_catalog_settings, load_pyiceberg_catalog
    from tests.support.iceberg_files import month_partitioned_table

    catalog = load_pyiceberg_catalog(glue_catalog_settings(f"s3://{aws.warehouse}/", aws.catalog_properties))
    try:
        return catalog.load_table(f"{aws.database}.summary")
    except NoSuchTableError:
        return month_partitioned_table(catalog, f"{aws.database}.summary", [])


@pytest.fixture
def pipeline(aws, synthesized, monkeypatch):
    # The interpreter's own service calls (e.g. sns:publish) go to localhost:$MOTO_PORT.
    monkeypatch.setenv("MOTO_PORT", aws.endpoint.rsplit(":", 1)[1])
    requests.post(f"{aws.endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}},
                  timeout=10)
    built = Pipeline(aws, synthesized["dev"])
    recorder = CallRecorder()
    with recorder.installed(), routed(synthesized["dev"], built.emr, recorder):
        yield built
    # Every AWS call a handler made is allowed by its role in the template (see tests/support/iam.py).
    verdict = check_calls(recorder.ours(), moto_deployment(aws, synthesized["dev"]))
    assert verdict, f"calls the roles do not allow: {json.dumps(verdict.missing, indent=1)}"
    assert verdict.checked > 0
    # ... and every request passes the service model, lengths and patterns included.
    invalid = [f"{c.service}:{c.operation}: {p}" for c in recorder.ours() for p in problems(c.service, c.operation,
                                                                                         c.params)]
    assert invalid == []
    requests.post(f"{aws.endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": False}},
                  timeout=10)


def moto_deployment(aws: Any, template: Dict[str, Any]) -> Deployment:
    """The template with its buckets, ledger table and EMR application named as under moto."""
    names = {}
    for lid, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            for part, name in (("Landing", aws.landing), ("Warehouse", aws.warehouse), ("Artifacts", aws.artifacts)):
                if lid.startswith(f"Storage{part}"):
                    names[lid] = name
        elif kind == "AWS::DynamoDB::Table":
            names[lid] = aws.ledger_table
        elif kind == "AWS::EMRServerless::Application":
            names[lid] = aws.application_id
    return Deployment(template, names)


def event(aws: Any, month: str, batch_id: str = "b1") -> Dict[str, Any]:
    return s3_object_created_event(aws.landing, land(aws, month, batch_id))


def test_initial_then_forward_arrival(pipeline, aws):
    first = pipeline.run(event(aws, "2024-01"))
    assert first["status"] == "SUCCEEDED", first
    second = pipeline.run(event(aws, "2024-02"))
    assert second["status"] == "SUCCEEDED", second
    assert pipeline.job_steps() == [("initial", ["2024-01"]), ("forward", ["2024-02"])]
    book = ledger(aws)
    assert {b.batch_key: b.state for b in book.batches()} == {"2024-01/b1": DONE, "2024-02/b1": DONE}
    assert book.get("2024-02/b1").job_run_id == pipeline.emr.jobs[1]["JobRunId"]
    assert book.lock() is None and [r.outcome for r in book.runs()] == ["succeeded", "succeeded"]
    request = pipeline.emr.requests[1]
    assert request["ClientToken"].startswith("dd-") and request["ExecutionTimeoutMinutes"] == 120


def test_backfill_is_applied_before_a_pending_forward_month(pipeline, aws):
    assert pipeline.run(event(aws, "2024-03"))["status"] == "SUCCEEDED"  # summary now ends at 2024-03
    land(aws, "2024-05", "b1")
    land(aws, "2024-02", "b1")
    land(aws, "2024-02", "b2")
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    assert pipeline.job_steps() == [("initial", ["2024-03"]), ("backfill", ["2024-02"]), ("forward", ["2024-05"])]
    assert len(pipeline.emr.jobs[1]["Step"]["batches"]) == 2  # both batches of 2024-02 in one step


def test_a_backfill_step_announces_its_amended_history_on_the_default_bus(pipeline, aws):
    import boto3

    events = boto3.client("events", endpoint_url=aws.endpoint, region_name=REGION)
    queue_url = pipeline.sqs.create_queue(QueueName="amendments")["QueueUrl"]
    queue_arn = pipeline.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="downstream", EventPattern=json.dumps({"source": ["datadominion"],
                                                                "detail-type": ["Summary history amended"]}))
    events.put_targets(Rule="downstream", Targets=[{"Id": "q", "Arn": queue_arn}])
    assert pipeline.run(event(aws, "2024-03"))["status"] == "SUCCEEDED"
    assert pipeline.run(event(aws, "2024-02"))["status"] == "SUCCEEDED"  # a backfill
    messages = pipeline.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    [announced] = [json.loads(m["Body"]) for m in messages]  # the initial load announced nothing
    assert announced["detail"]["mode"] == "backfill" and announced["detail"]["months"] == ["2024-02"]
    assert announced["detail"]["records"] == 3 and announced["detail"]["environment"] == "test"
    assert announced["detail"]["snapshot_id"] == 77


def test_duplicate_events_start_one_job_per_batch(pipeline, aws):
    arrival = event(aws, "2024-01")
    results = [pipeline.run(arrival), pipeline.run(arrival)]
    assert [r["status"] for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert "NothingNew" in states_entered(pipeline.sfn, results[1]["executionArn"])
    assert len(pipeline.emr.jobs) == 1 and len(pipeline.emr.requests) == 1


def test_lock_contention_waits_then_finds_nothing_to_do(pipeline, aws):
    book = ledger(aws)
    assert book.acquire_lock("other-run", datetime.now(timezone.utc), 3600)
    execution = pipeline.start(event(aws, "2024-01"))
    deadline = time.monotonic() + 60
    while states_entered(pipeline.sfn, execution).count("WaitForLock") < 2:
        assert time.monotonic() < deadline, "the execution never waited for the lock"
        time.sleep(0.2)
    # The other run applies the batch and lets go; the waiting execution then has nothing to do.
    batch = book.get("2024-01/b1")
    book.update(batch.moved(DONE, datetime.now(timezone.utc)))
    book.release_lock("other-run")
    result = wait_for(pipeline.sfn, execution)
    assert result["status"] == "SUCCEEDED"
    assert "AllApplied" in states_entered(pipeline.sfn, execution) and pipeline.emr.jobs == []
    assert book.lock() is None


def test_two_arrivals_racing_for_the_lock_are_both_applied_in_month_order(pipeline, aws):
    land(aws, "2024-01", "b1")
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    executions = [pipeline.start(event(aws, "2024-03")), pipeline.start(event(aws, "2024-02"))]
    results = [wait_for(pipeline.sfn, e) for e in executions]
    assert [r["status"] for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    applied = [months for _, months in pipeline.job_steps()[1:]]
    assert sorted(m for ms in applied for m in ms) == ["2024-02", "2024-03"]
    assert {b.state for b in ledger(aws).batches()} == {DONE}


def test_failed_job_records_failed_releases_lock_notifies_and_fails(pipeline, aws):
    pipeline.fail_months = {"2024-01"}
    result = pipeline.run(event(aws, "2024-01"))
    assert result["status"] == "FAILED"
    book = ledger(aws)
    batch = book.get("2024-01/b1")
    assert batch.state == FAILED and "ExitCode: 1" in batch.reason and "ExecutorLostFailure" in batch.reason
    assert batch.job_run_id == pipeline.emr.jobs[0]["JobRunId"]
    assert book.lock() is None and book.runs()[0].outcome == "failed"
    [message] = pipeline.notifications()
    assert "exec-1 failed" in message and "2024-01/b1" in message
    run_id = pipeline.emr.jobs[0]["JobRunId"]
    assert f"job run {run_id}" in message and "CloudWatch /aws/emr-serverless/datadominion-dev:" in message
    assert batch.cloudwatch_logs.endswith(f"/jobs/{run_id}/")
    # The next run (the sweep) retries the step as a new attempt: a new client token, a new job.
    pipeline.fail_months = set()
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    assert book.get("2024-01/b1").state == DONE and book.get("2024-01/b1").attempts == 2
    assert len(pipeline.emr.jobs) == 2 and len({r["ClientToken"] for r in pipeline.emr.requests}) == 2


def test_rerun_and_sweep_inputs(pipeline, aws):
    land(aws, "2024-01", "b1")  # its event was lost: only the sweep finds it
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    assert ledger(aws).get("2024-01/b1").state == DONE
    first = pipeline.run({"rerun": {"months": ["2024-01"]}})
    again = pipeline.run({"rerun": {"months": ["2024-01"]}})
    assert first["status"] == again["status"] == "SUCCEEDED"
    reruns = [r for r in pipeline.emr.jobs if r["Step"]["mode"] == "rerun"]
    assert len(reruns) == 2  # each operator re-run is new work
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"  # nothing pending: no job
    assert len(pipeline.emr.jobs) == 3


def test_the_maintain_input_runs_one_maintenance_job_under_the_lock(pipeline, aws):
    summary_table_with_months(aws, ["2024-01", "2024-02"])
    assert pipeline.run({"maintain": True})["status"] == "SUCCEEDED"
    [job] = pipeline.emr.jobs  # planned once: the request is cleared before the next Plan
    assert job["Step"]["mode"] == "maintain" and job["Step"]["notes"] == ["requested by the operator"]
    assert ledger(aws).lock() is None
    [record] = ledger(aws).steps(mode="maintain")  # who, when, why, what: the job's report
    assert record.outcome == DONE and record.notes == ("requested by the operator",) and record.job_run_id
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"  # a healthy table is not due
    assert len(pipeline.emr.jobs) == 1
    assert pipeline.run({"maintain": "yes"})["status"] == "FAILED"


def test_the_hourly_sweep_schedules_maintenance_when_a_table_crosses_a_threshold(pipeline, aws, monkeypatch):
    from lambdas import wiring

    summary_table_with_months(aws, ["2024-01", "2024-02", "2024-03"])  # three snapshots
    monkeypatch.setenv("MAINTENANCE", json.dumps({"max_snapshots": 2}))
    wiring.settings.cache_clear()
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    [job] = pipeline.emr.jobs
    assert job["Step"]["mode"] == "maintain" and job["Step"]["notes"] == ["summary: 3 snapshots > 2"]
    assert [r.notes for r in ledger(aws).steps(mode="maintain")] == [("summary: 3 snapshots > 2",)]


def test_plan_only_previews_the_run_and_locks_registers_and_starts_nothing(pipeline, aws):
    from lambdas import register

    ctx = FakeLambdaContext()
    summary_table_with_months(aws, ["2024-01", "2024-02", "2024-03"])
    register.handler(s3_object_created_event(aws.landing, land(aws, "2024-02", "late")), ctx)
    land(aws, "2024-04", "unannounced")  # its event was lost: a preview does not register it
    before = {b.batch_key: (b.state, b.attempts) for b in ledger(aws).batches()}
    result = pipeline.run({"plan_only": True, "rerun": {"months": ["2024-01"]}})
    assert result["status"] == "SUCCEEDED"
    steps = json.loads(result["output"])["preview"]["value"]["steps"]
    assert [(s["mode"], s["months"], s["batch_count"]) for s in steps] == [
        ("rerun", ["2024-01"], 0), ("backfill", ["2024-02"], 1)]
    assert steps[1]["rewrites_months"] == "2024-02..2024-03" and steps[0]["accounts_estimate"] == 2
    assert {b.batch_key: (b.state, b.attempts) for b in ledger(aws).batches()} == before
    assert pipeline.emr.jobs == [] and ledger(aws).lock() is None and ledger(aws).runs() == []


def test_bad_input_fails_the_execution_with_the_reason_and_touches_nothing(pipeline, aws):
    result = pipeline.run({"rerun": {"months": ["2024-13"]}})
    assert result["status"] == "FAILED"
    [message] = pipeline.notifications()
    assert "2024-13" in message
    assert ledger(aws).lock() is None and pipeline.emr.jobs == [] and ledger(aws).batches() == []


def test_rejected_batch_is_recorded_and_its_sibling_still_applied(pipeline, aws):
    land(aws, "2024-01", "good")
    land(aws, "2024-01", "bad")
    original = pipeline._play_job

    def reject_bad(step, result_uri):
        keys = [f"{b['month']}/{b['batch_id']}" for b in step["batches"]]
        if "2024-01/bad" in keys:
            bucket, key = s3_location(result_uri)
            put_json(aws.s3, bucket, key, {"state": "REJECTED", "rejected": {"2024-01/bad": "rule 'null_key'"}})
            return "FAILED", "Job failed, ExitCode: 1"
        return original(step, result_uri)

    pipeline.emr.effects = reject_bad
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    states = {b.batch_key: b.state for b in ledger(aws).batches()}
    assert states == {"2024-01/bad": "REJECTED", "2024-01/good": DONE}
    assert [len(r["Step"]["batches"]) for r in pipeline.emr.jobs] == [2, 1]
    assert REGISTERED not in states.values()


@pytest.mark.parametrize("state, details", [
    ("FAILED", "Job run timed out after 120 minutes (executionTimeoutMinutes)"),
    ("CANCELLED", "Job run cancelled by user"),
])
def test_job_timeout_or_cancellation_is_failed_with_the_reason_and_retried(pipeline, aws, state, details):
    pipeline.emr.effects = lambda step, result_uri: (state, details)
    assert pipeline.run(event(aws, "2024-01"))["status"] == "FAILED"
    book = ledger(aws)
    batch = book.get("2024-01/b1")
    assert batch.state == FAILED and details in batch.reason and state in batch.reason
    assert book.lock() is None
    pipeline.emr.effects = pipeline._play_job
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    assert book.get("2024-01/b1").state == DONE and len(pipeline.emr.jobs) == 2


def test_a_crashed_lock_holder_is_taken_over_after_its_lease(pipeline, aws):
    book = ledger(aws)
    long_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert book.acquire_lock("crashed-run", long_ago, 3600)  # its lease ended years ago
    assert pipeline.run(event(aws, "2024-01"))["status"] == "SUCCEEDED"
    assert book.get("2024-01/b1").state == DONE and book.lock() is None


def test_a_step_failing_max_attempts_times_is_parked_until_an_operator_retries(pipeline, aws):
    pipeline.fail_months = {"2024-01"}
    assert pipeline.run(event(aws, "2024-01"))["status"] == "FAILED"
    assert pipeline.run({"sweep": True})["status"] == "FAILED"
    assert pipeline.run({"sweep": True})["status"] == "FAILED"
    assert ledger(aws).get("2024-01/b1").attempts == 3
    parked = pipeline.run({"sweep": True})  # the hourly sweep no longer reruns the failing job
    assert parked["status"] == "SUCCEEDED" and len(pipeline.emr.jobs) == 3
    assert json.loads(parked["output"])["plan"]["value"]["parked"] == ["2024-01/b1"]
    pipeline.fail_months = set()  # the cause is fixed
    assert pipeline.run({"sweep": True, "retry_failed": True})["status"] == "SUCCEEDED"
    assert ledger(aws).get("2024-01/b1").state == DONE and len(pipeline.emr.jobs) == 4


def test_a_notification_that_cannot_be_published_still_ends_the_run_cleanly(pipeline, aws):
    pipeline.fail_months = {"2024-01"}
    for topic in pipeline.sns.list_topics()["Topics"]:  # publishing now fails (NotFound)
        pipeline.sns.delete_topic(TopicArn=topic["TopicArn"])
    result = pipeline.run(event(aws, "2024-01"))
    assert result["status"] == "FAILED" and result["error"] == "DataDominion.RunFailed"
    assert "Notify" in states_entered(pipeline.sfn, result["executionArn"])
    book = ledger(aws)
    assert book.lock() is None and book.get("2024-01/b1").state == FAILED


def test_when_recording_the_failure_fails_the_lock_is_still_released_and_notified(pipeline, aws, monkeypatch):
    from datadominion import run_tasks

    def broken(*args, **kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(run_tasks, "fail", broken)
    pipeline.fail_months = {"2024-01"}
    result = pipeline.run(event(aws, "2024-01"))
    assert result["status"] == "FAILED" and result["error"] == "DataDominion.RunFailed"
    assert "ReleaseLockAfterFailure" in states_entered(pipeline.sfn, result["executionArn"])
    assert ledger(aws).lock() is None
    [message] = pipeline.notifications()
    assert "exec-1 failed" in message and "Recording the failure in the ledger failed" in message


class FakeClock:
    """The handlers' clock (lambdas.wiring.now), moved by the jobs the fake EMR plays."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def short_lease(monkeypatch):
    """A 600 s lease and a fake clock; jobs then take the time a test says."""
    from lambdas import wiring

    monkeypatch.setenv("LOCK_LEASE_SECONDS", "600")
    wiring.settings.cache_clear()
    clock = FakeClock()
    monkeypatch.setattr(wiring, "now", clock)
    return clock


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def test_the_lease_is_renewed_before_each_step_so_a_long_plan_keeps_the_lock(pipeline, aws, short_lease):
    """Three forward steps of 400 s each outlast one 600 s lease; renewed before each step, the
    lock stays with the run, and a sweep arriving meanwhile waits and then finds nothing to do."""
    assert pipeline.run(event(aws, "2024-01"))["status"] == "SUCCEEDED"
    for month in ("2024-02", "2024-03", "2024-04"):
        land(aws, month, "b1")
    play, competitor = pipeline._play_job, []

    def slow_job(step, result_uri):
        short_lease.advance(400)
        if step["months"] == ["2024-03"]:  # 800 s after the Plan: past the lease it took there
            competitor.append(pipeline.start({"sweep": True}))
            wait_until(lambda: states_entered(pipeline.sfn, competitor[0]).count("WaitForLock") >= 1,
                       "the sweep waits for the lock")
        return play(step, result_uri)

    pipeline.emr.effects = slow_job
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    assert wait_for(pipeline.sfn, competitor[0])["status"] == "SUCCEEDED"
    assert "ApplySteps" not in states_entered(pipeline.sfn, competitor[0])  # it never planned a step
    assert [months for _, months in pipeline.job_steps()] == [["2024-01"], ["2024-02"], ["2024-03"], ["2024-04"]]


def test_a_run_whose_lease_was_taken_over_stops_with_lock_lost(pipeline, aws, short_lease):
    """A step outlasts the lease (700 s > 600 s) and a competing execution takes the lock: the
    first run stops before its next step with LockLost, touches nothing of the new holder's,
    and the new holder applies every step once."""
    assert pipeline.run(event(aws, "2024-01"))["status"] == "SUCCEEDED"
    for month in ("2024-02", "2024-03", "2024-04"):
        land(aws, month, "b1")
    play, competitor = pipeline._play_job, []
    book = ledger(aws)

    def overrunning_job(step, result_uri):
        if step["months"] == ["2024-02"] and not competitor:
            short_lease.advance(700)
            competitor.append(pipeline.start({"sweep": True}))
            wait_until(lambda: (book.lock() is not None and book.lock().owner == competitor[0].rsplit(":", 1)[1]),
                       "the sweep holds the lock")
        return play(step, result_uri)

    pipeline.emr.effects = overrunning_job
    first = pipeline.run({"sweep": True})
    second = wait_for(pipeline.sfn, competitor[0])
    assert first["status"] == "FAILED" and "LockLost" in first["cause"] + str(pipeline.notifications())
    assert "RunJob" in states_entered(pipeline.sfn, first["executionArn"])
    assert second["status"] == "SUCCEEDED"
    assert {b.batch_key: b.state for b in book.batches()} == {f"2024-0{m}/b1": DONE for m in (1, 2, 3, 4)}
    assert [months for _, months in pipeline.job_steps()] == [["2024-01"], ["2024-02"], ["2024-03"], ["2024-04"]]
    assert book.lock() is None


def test_a_job_that_rejects_some_batches_applies_the_rest_in_one_run(pipeline, aws):
    for batch_id in ("good", "bad1", "bad2"):
        land(aws, "2024-01", batch_id)
    original = pipeline._play_job

    def reject_some(step, result_uri):
        state, details = original(step, result_uri)
        bucket, key = s3_location(result_uri)
        put_json(aws.s3, bucket, key, {"state": "SUCCESS", "report": {}, "rejected": {
            "2024-01/bad1": "rule 'non-null cons_acct_key'", "2024-01/bad2": "rule 'month matches path'"}})
        return state, details

    pipeline.emr.effects = reject_some
    assert pipeline.run({"sweep": True})["status"] == "SUCCEEDED"
    book = ledger(aws)
    assert {b.batch_key: b.state for b in book.batches()} == {
        "2024-01/bad1": "REJECTED", "2024-01/bad2": "REJECTED", "2024-01/good": DONE}
    assert "month matches path" in book.get("2024-01/bad2").reason
    assert len(pipeline.emr.jobs) == 1  # validated once, not once per bad batch
    for batch_id, rule in (("bad1", "non-null cons_acct_key"), ("bad2", "month matches path")):
        folder = f"accounts_all/rpt_as_of_mo=2024-01/{batch_id}/"
        note = aws.s3.get_object(Bucket=aws.landing, Key=folder + "_REJECTED.json")
        assert json.loads(note["Body"].read())["rule"] == rule
    good = aws.s3.list_objects_v2(Bucket=aws.landing, Prefix="accounts_all/rpt_as_of_mo=2024-01/good/_R")
    assert "Contents" not in good
