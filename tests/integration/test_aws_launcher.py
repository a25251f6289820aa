"""The launcher's AWS side against moto (ThreadedMotoServer): S3 landing, DynamoDB ledger
and lock, EMR Serverless submission, Glue + S3 Iceberg metadata, and the Lambda handlers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from datadominion.job_request import client_token
from datadominion.ledger import DONE, FAILED, REGISTERED, REJECTED, RUNNING
from datadominion.months import month_of
from datadominion.table_metadata import newest_summarised_month, summarised_months
from lambdas import finish, lock, plan, record, register, wiring
from tests.support.aws import (
    FakeLambdaContext,
    land,
    ledger,
    parquet_bytes,
    put_json,
    s3_object_created_event,
    summary_table_with_months,
)

CTX = FakeLambdaContext()
THIS_MONTH = month_of(datetime.now(timezone.utc).date())


# --- Register ----------------------------------------------------------------------------

def test_register_records_a_batch_from_an_s3_eventbridge_event(aws):
    key = land(aws, "2025-02", "b1", {"part-0.parquet": parquet_bytes(), "part-1.parquet": parquet_bytes()})
    result = register.handler(s3_object_created_event(aws.landing, key), CTX)
    assert result["registered"] == ["2025-02/b1"] and result["proceed"] is True
    batch = ledger(aws).get("2025-02/b1")
    assert batch.state == REGISTERED and batch.month == "2025-02"
    manifest = json.loads(aws.s3.get_object(Bucket=aws.artifacts, Key="manifests/2025-02/b1.json")["Body"].read())
    assert batch.manifest.uri == f"s3://{aws.artifacts}/manifests/2025-02/b1.json" and batch.manifest.count == 2
    assert [k for k, _ in manifest["objects"]] == [key.replace("_SUCCESS", f"part-{i}.parquet") for i in (0, 1)]
    assert batch.manifest.total_bytes == 2 * len(parquet_bytes()) == sum(size for _, size in manifest["objects"])
    assert batch.location == f"s3://{aws.landing}/accounts_all/rpt_as_of_mo=2025-02/b1/"
    # The same event again (S3 and EventBridge deliver at least once): nothing new, and the run ends.
    again = register.handler(s3_object_created_event(aws.landing, key), CTX)
    assert again["registered"] == [] and again["duplicates"] == ["2025-02/b1"] and again["proceed"] is False
    assert len(ledger(aws).batches()) == 1


def _far_future() -> str:
    year, month = map(int, THIS_MONTH.split("-"))
    return f"{year + 1}-{month:02d}"


@pytest.mark.parametrize("make, reason", [
    (lambda aws: "accounts_all/rpt_as_of_mo=2025-13/b1/_SUCCESS", "month 13"),
    (lambda aws: "accounts_all/rpt_as_of_mo=202502/b1/_SUCCESS", "YYYY-MM"),
    (lambda aws: "accounts_all/b1/_SUCCESS", "does not follow"),
    (lambda aws: "landing/rpt_as_of_mo=2025-01/b1/_SUCCESS", "is not under the 'accounts_all/' prefix"),
    (lambda aws: land(aws, _far_future(), "b1"), "is in the future"),
    (lambda aws: land(aws, "2025-01", "b1", files={}), "has no .parquet objects"),
    (lambda aws: land(aws, "2025-01", "b1", files={"part-0.parquet": b""}), "zero-byte Parquet objects"),
    (lambda aws: land(aws, "2025-01", "b1", files={"part-0.parquet": b"id,balance\n1,2\n"}), "not a Parquet file"),
    (lambda aws: land(aws, "2025-01", "b1", files={"part-0.parquet": parquet_bytes(), "x.csv": b"1"}),
     "unexpected non-Parquet objects"),
    (lambda aws: land(aws, "2025-01", "b1", files={"part-0.parquet": parquet_bytes(),
                                                  "sub/part-1.parquet": parquet_bytes()}), "unexpected sub-folders"),
])
def test_every_bad_key_or_batch_is_rejected_with_its_reason_and_nothing_is_planned(aws, make, reason):
    key = make(aws)
    result = register.handler(s3_object_created_event(aws.landing, key), CTX)
    assert result["registered"] == [] and result["proceed"] is False
    [(batch_key, why)] = result["rejected"].items()
    assert reason in why
    [stored] = ledger(aws).batches()
    assert stored.state == REJECTED and reason in stored.reason
    notes = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.landing).get("Contents", [])
             if o["Key"].endswith("/_REJECTED.json")]
    if stored.batch_id:  # the producer sees why beside its marker; an unparsable key has no folder
        assert notes == [key.replace("_SUCCESS", "_REJECTED.json")]
        note = json.loads(aws.s3.get_object(Bucket=aws.landing, Key=notes[0])["Body"].read())
        assert reason in note["reason"] and note["batch_key"] == batch_key
    else:
        assert notes == []
    # Even a sweep that re-reads the landing bucket plans nothing for it.
    lock.handler({"owner": "run-1"}, CTX)
    assert plan.handler({"owner": "run-1", "rerun_months": []}, CTX)["steps"] == []


def test_event_from_another_bucket_and_unrecognised_inputs_fail_clearly(aws):
    from datadominion.run_input import RunInputError

    with pytest.raises(RunInputError, match="not the landing bucket"):
        register.handler(s3_object_created_event("someone-elses-bucket", "accounts_all/x/_SUCCESS"), CTX)
    with pytest.raises(RunInputError, match=r'\{"rerun": \{"months"'):
        register.handler({"rerun": {"months": "2024-03"}}, CTX)
    with pytest.raises(RunInputError, match="unrecognised input"):
        register.handler({"sweep": "yes"}, CTX)
    assert ledger(aws).batches() == []


def test_sweep_registers_every_complete_batch_and_skips_incomplete_ones(aws):
    land(aws, "2025-01", "b1")
    land(aws, "2025-02", "b1")
    land(aws, "2025-02", "b2", marker=False)  # still uploading
    result = register.handler({"sweep": True}, CTX)
    assert sorted(result["registered"]) == ["2025-01/b1", "2025-02/b1"] and result["proceed"] is True
    assert register.handler({"sweep": True}, CTX)["registered"] == []


# --- Ledger and lock on DynamoDB -----------------------------------------------------------

def test_lock_handler_reports_contention_as_an_outcome(aws):
    assert lock.handler({"owner": "exec-1"}, CTX)["acquired"] is True
    waiting = lock.handler({"owner": "exec-2"}, CTX)
    assert waiting["acquired"] is False and waiting["holder"] == "exec-1"
    finish.handler({"owner": "exec-1", "started": datetime.now(timezone.utc).isoformat()}, CTX)
    assert lock.handler({"owner": "exec-2"}, CTX)["acquired"] is True


# --- Plan: Iceberg metadata in Glue + S3 ------------------------------------------------------

def test_a_sweep_reports_stalled_batch_folders_and_s3_listing_carries_their_age(aws, monkeypatch):
    from datadominion.adapters.s3_storage import S3Storage

    land(aws, "2025-01", "stalled", marker=False)
    [obj] = S3Storage(aws.s3, aws.landing).list("accounts_all/")
    assert obj.modified is not None and obj.modified.tzinfo is not None
    assert register.handler({"sweep": True}, CTX)["incomplete"] == []  # just written: not overdue
    from lambdas import wiring as lambda_wiring

    later = obj.modified + timedelta(hours=7)
    monkeypatch.setattr(lambda_wiring, "now", lambda: later)
    result = register.handler({"sweep": True}, CTX)
    assert result["incomplete"] == ["accounts_all/rpt_as_of_mo=2025-01/stalled/"] and result["incomplete_count"] == 1


def test_newest_summarised_month_from_glue_table_metadata(aws):
    catalog = summary_table_with_months(aws, ["2024-01", "2024-03", "2024-02"])
    identifier = f"{aws.database}.summary"
    assert summarised_months(catalog, identifier) == ["2024-01", "2024-02", "2024-03"]
    assert newest_summarised_month(catalog, identifier) == "2024-03"
    assert newest_summarised_month(catalog, f"{aws.database}.missing") is None


def test_plan_labels_months_against_the_glue_summary_table(aws):
    summary_table_with_months(aws, ["2024-01", "2024-02", "2024-03"])
    for month in ("2024-05", "2024-02", "2024-04"):
        register.handler(s3_object_created_event(aws.landing, land(aws, month, "b1")), CTX)
    register.handler(s3_object_created_event(aws.landing, land(aws, "2024-02", "b2")), CTX)
    assert lock.handler({"owner": "exec-1"}, CTX)["acquired"]
    result = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)
    steps = [(i["step"]["mode"], i["step"]["months"], len(i["step"]["batches"])) for i in result["steps"]]
    assert steps == [("backfill", ["2024-02"], 2), ("forward", ["2024-04"], 1), ("forward", ["2024-05"], 1)]
    assert result["newest_summarised"] == "2024-03"
    first = result["steps"][0]
    request = first["request"]
    assert request["ApplicationId"] == aws.application_id
    assert request["ClientToken"] == f"dd-{first['step_id']}-1"
    assert request["ExecutionRoleArn"] == aws.job_settings.execution_role_arn
    assert request["JobDriver"]["SparkSubmit"]["EntryPoint"] == aws.job_settings.entry_point
    arguments = request["JobDriver"]["SparkSubmit"]["EntryPointArguments"]
    assert json.loads(arguments[arguments.index("--step") + 1])["months"] == ["2024-02"]
    assert json.loads(arguments[arguments.index("--catalog") + 1])["kind"] == "glue"
    assert arguments[arguments.index("--result-uri") + 1] == first["result_uri"]
    assert request["ConfigurationOverrides"]["MonitoringConfiguration"]["S3MonitoringConfiguration"]["LogUri"] \
        == aws.job_settings.log_uri
    assert request["ExecutionTimeoutMinutes"] == 120 and request["Tags"]["datadominion:mode"] == "backfill"
    assert {b.state for b in ledger(aws).batches()} == {RUNNING}
    assert "maintain" not in [i["mode"] for i in result["steps"]]  # a fresh, small table is not due


def test_plan_schedules_maintenance_when_asked_or_when_a_threshold_is_crossed(aws, monkeypatch):
    summary_table_with_months(aws, ["2024-01", "2024-02", "2024-03"])  # three snapshots
    assert lock.handler({"owner": "exec-1"}, CTX)["acquired"]
    asked = plan.handler({"owner": "exec-1", "rerun_months": [], "maintain": True}, CTX)
    [step] = asked["steps"]
    assert step["mode"] == "maintain" and step["step"]["notes"] == ["requested by the operator"]
    assert step["request"]["ClientToken"].endswith("exec-1")  # each request is new work
    assert plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"] == []
    monkeypatch.setenv("MAINTENANCE", json.dumps({"max_snapshots": 2}))
    wiring.settings.cache_clear()
    [due] = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"]
    assert due["mode"] == "maintain" and due["step"]["notes"] == ["summary: 3 snapshots > 2"]


def test_plan_of_an_empty_summary_is_one_initial_step_and_needs_the_lock(aws):
    from datadominion.run_tasks import LockLost

    for month in ("2024-01", "2024-02"):
        register.handler(s3_object_created_event(aws.landing, land(aws, month, "b1")), CTX)
    with pytest.raises(LockLost):
        plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)
    lock.handler({"owner": "exec-1"}, CTX)
    [item] = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"]
    assert item["step"]["mode"] == "initial" and item["step"]["months"] == ["2024-01", "2024-02"]


# --- Submit / track / record -----------------------------------------------------------------

def _planned_item(aws, month="2024-01"):
    register.handler(s3_object_created_event(aws.landing, land(aws, month, "b1")), CTX)
    lock.handler({"owner": "exec-1"}, CTX)
    [item] = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"]
    return item


def test_record_success_failure_and_rejection(aws):
    item = _planned_item(aws)
    result_key = item["result_uri"].split(f"s3://{aws.artifacts}/")[1]
    # A job that failed for a reason outside the batch: FAILED with the job's state details.
    cause = json.dumps({"JobRunId": "00fabc", "State": "FAILED", "StateDetails": "Job run timed out after 120 min"})
    failed = record.handler({"item": item, "error": {"Error": "States.TaskFailed", "Cause": cause}}, CTX)
    assert failed["outcome"] == FAILED and "timed out" in failed["detail"]
    batch = ledger(aws).get("2024-01/b1")
    assert batch.state == FAILED and "timed out" in batch.reason and batch.job_run_id == "00fabc"
    assert batch.log_uri == f"s3://{aws.artifacts}/emr-logs/applications/{aws.application_id}/jobs/00fabc/"
    # The next run retries it with a new attempt, hence a new client token.
    lock.handler({"owner": "exec-1"}, CTX)
    [retry] = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"]
    assert retry["attempt"] == 2 and retry["request"]["ClientToken"] != item["request"]["ClientToken"]
    # The job found the batch itself bad: REJECTED with the job's reason; the run goes on.
    put_json(aws.s3, aws.artifacts, retry["result_uri"].split(f"s3://{aws.artifacts}/")[1],
             {"state": "REJECTED", "rejected": {"2024-01/b1": "rule 'null_key': 3 rows"}})
    rejected = record.handler({"item": retry, "error": {"Error": "States.TaskFailed", "Cause": "{}"}}, CTX)
    assert rejected["outcome"] == REJECTED and ledger(aws).get("2024-01/b1").state == REJECTED
    assert "null_key" in ledger(aws).get("2024-01/b1").reason
    # Success: DONE with the job run id and its report.
    item2 = _planned_item(aws, "2024-02")
    put_json(aws.s3, aws.artifacts, item2["result_uri"].split(f"s3://{aws.artifacts}/")[1],
             {"state": "SUCCESS", "report": {"rows_ingested": 2}})
    done = record.handler({"item": item2, "job": {"JobRunId": "00fdef", "ApplicationId": aws.application_id}}, CTX)
    assert done["outcome"] == "DONE" and done["report"] == {"rows_ingested": 2}
    assert ledger(aws).get("2024-02/b1").state == DONE and ledger(aws).get("2024-02/b1").job_run_id == "00fdef"
    assert result_key  # the result location is inside the artifacts bucket


def test_failure_path_requeues_unstarted_steps_and_releases_the_lock(aws):
    for month in ("2024-01", "2024-02"):
        register.handler(s3_object_created_event(aws.landing, land(aws, month, "b1")), CTX)
    lock.handler({"owner": "exec-1"}, CTX)
    items = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"]
    assert len(items) == 1  # initial load: one bulk step
    record.handler({"item": items[0], "error": {"Error": "States.TaskFailed", "Cause": "boom"}}, CTX)
    result = finish.handler({"owner": "exec-1", "started": "2025-01-01T00:00:00Z",
                             "error": {"Error": "StepFailed", "Cause": "boom"}}, CTX)
    assert sorted(result["failed"]) == ["2024-01/b1", "2024-02/b1"] and "exec-1 failed" in result["message"]
    assert ledger(aws).lock() is None
    assert ledger(aws).runs()[0].outcome == "failed"


def test_orphaned_running_step_keeps_its_client_token(aws):
    item = _planned_item(aws)
    # The run crashed while its job ran; after the lease, another run plans the same step again.
    book = ledger(aws)
    book.release_lock("exec-1")
    lock.handler({"owner": "exec-2"}, CTX)
    [again] = plan.handler({"owner": "exec-2", "rerun_months": []}, CTX)["steps"]
    assert again["request"]["ClientToken"] == item["request"]["ClientToken"]  # re-attaches, no second job


def test_emr_serverless_accepts_the_job_request(aws):
    from datadominion.job_request import start_job_run_request
    from datadominion.steps import Step, StepBatch

    step = Step("forward", ("2024-02",), (StepBatch("2024-02", "b1", f"s3://{aws.landing}/x/"),), "exec-1")
    job_run_id = aws.emr.start_job_run(**start_job_run_request(aws.job_settings, step, 1))["jobRunId"]
    run = aws.emr.get_job_run(applicationId=aws.application_id, jobRunId=job_run_id)["jobRun"]
    assert run["name"].startswith("forward-2024-02-")
    assert run["executionRole"] == aws.job_settings.execution_role_arn
    assert run["jobDriver"]["sparkSubmit"]["entryPoint"] == aws.job_settings.entry_point
    assert "--py-files" in run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert client_token(step, 1) == client_token(step, 1) != client_token(step, 2)


def test_a_step_too_large_for_a_job_argument_travels_as_an_object(aws):
    from datadominion.job_request import INLINE_STEP_LIMIT
    from datadominion.steps import Step

    months = [f"20{20 + i // 12:02d}-{i % 12 + 1:02d}" for i in range(60)]
    for month in months:
        for batch_id in ("feed-a", "feed-b"):
            land(aws, month, batch_id)
    register.handler({"sweep": True}, CTX)
    lock.handler({"owner": "exec-1"}, CTX)
    [item] = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)["steps"]
    arguments = item["request"]["JobDriver"]["SparkSubmit"]["EntryPointArguments"]
    assert all(len(a) <= INLINE_STEP_LIMIT for a in arguments)
    uri = arguments[arguments.index("--step") + 1]
    assert uri.startswith(f"s3://{aws.artifacts}/job-results/") and uri.endswith("/1.step.json")
    bucket, key = uri[5:].split("/", 1)
    written = Step.from_json(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    assert written.step_id == item["step_id"] and len(written.batches) == 120


def test_plan_reports_an_overdue_month_and_a_drop_in_accounts_as_metrics(aws, monkeypatch, capsys):
    """The Plan's freshness figures reach CloudWatch as EMF metrics on stdout (what the
    MonthOverdue and AccountDropPct alarms read)."""
    summary_table_with_months(aws, ["2024-01", "2024-02"])  # two rows a month; 2024-03 long overdue
    assert lock.handler({"owner": "exec-1"}, CTX)["acquired"]
    capsys.readouterr()
    plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = {k: v for blob in emitted for k, v in blob.items() if k in ("MonthOverdue", "AccountDropPct")}
    assert set(values) == {"MonthOverdue", "AccountDropPct"}
    assert values["MonthOverdue"] in (1, [1]) and values["AccountDropPct"] in (0, [0])
