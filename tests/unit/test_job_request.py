import json
import re

import pytest

from datadominion.job_request import (
    JobSettings,
    client_token,
    for_step_functions,
    job_outcome,
    spark_submit_parameters,
    start_job_run_request,
)
from datadominion.steps import Step, StepBatch

SETTINGS = JobSettings(
    application_id="00fabc123", execution_role_arn="arn:aws:iam::123456789012:role/job",
    entry_point="s3://art/jobs/entrypoint.py", py_files="s3://art/jobs/datadominion-job.zip",
    dependencies="s3://art/jobs/job-deps.zip", config_uri="s3://art/configs/pipeline.json",
    warehouse="s3://wh/", log_uri="s3://logs/emr/", result_prefix="s3://art/job-results/", timeout_minutes=90,
    tags={"environment": "dev"}, region="ap-south-1", log_group="/aws/emr-serverless/datadominion-dev")


def step(mode="forward", months=("2024-03",), batch_ids=("b1",), run_id="exec-1"):
    batches = tuple(StepBatch(m, b, f"s3://land/{m}/{b}/") for m in months for b in batch_ids)
    return Step(mode, tuple(months), () if mode == "rerun" else batches, run_id)


def test_client_token_is_stable_for_the_same_work_and_attempt():
    a, b = step(run_id="exec-1"), step(run_id="exec-2")
    assert client_token(a, 1) == client_token(b, 1)  # a redrive or another run re-attaches
    assert client_token(a, 1) != client_token(a, 2)  # a retry after FAILED is a new job
    assert client_token(a, 1) != client_token(step(batch_ids=("b1", "b2")), 1)
    assert client_token(a, 1) != client_token(step(mode="backfill"), 1)
    for token in (client_token(a, 1), client_token(step("rerun", run_id="x" * 80), 3)):
        assert len(token) <= 64 and re.fullmatch(r"[A-Za-z0-9._-]+", token)
    with pytest.raises(ValueError, match="attempt"):
        client_token(a, 0)


def test_each_operator_rerun_is_new_work_but_its_retries_are_not():
    assert client_token(step("rerun", run_id="exec-1"), 1) == client_token(step("rerun", run_id="exec-1"), 1)
    assert client_token(step("rerun", run_id="exec-1"), 1) != client_token(step("rerun", run_id="exec-2"), 1)


def test_request_shape_and_its_step_functions_form():
    s = step(months=("2024-03",))
    request = start_job_run_request(SETTINGS, s, 2)
    assert request["applicationId"] == "00fabc123" and request["executionTimeoutMinutes"] == 90
    args = request["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    assert Step.from_json(args[args.index("--step") + 1]) == s
    assert args[args.index("--result-uri") + 1] == f"s3://art/job-results/{s.step_id}/2.json"
    assert json.loads(args[args.index("--catalog") + 1])["warehouse"] == "s3://wh/"
    sfn = for_step_functions(request)
    assert set(sfn) == {"ApplicationId", "ClientToken", "ExecutionRoleArn", "Name", "JobDriver",
                        "ConfigurationOverrides", "ExecutionTimeoutMinutes", "Tags"}
    assert sfn["JobDriver"]["SparkSubmit"]["EntryPointArguments"] == args
    assert sfn["Tags"] == {"environment": "dev", "datadominion:step": s.step_id, "datadominion:mode": "forward"}
    params = spark_submit_parameters(SETTINGS)
    assert "--py-files s3://art/jobs/datadominion-job.zip" in params
    assert "spark.archives=s3://art/jobs/job-deps.zip#deps" in params
    assert "spark.sql.catalog.datadominion=org.apache.iceberg.spark.SparkCatalog" in params
    assert "spark.sql.catalog.datadominion.type=glue" in params
    assert "spark.sql.catalog.datadominion.warehouse=s3://wh/" in params


@pytest.mark.parametrize("state, details, result, expected, rejected", [
    ("SUCCESS", "", '{"state": "SUCCESS", "report": {"rows_ingested": 5}}', "SUCCESS", {}),
    ("SUCCESS", "", None, "SUCCESS", {}),
    ("FAILED", "Job failed, ExitCode: 1", '{"state": "REJECTED", "rejected": {"2024-03/b1": "null key"}}',
     "FAILED", {"2024-03/b1": "null key"}),
    ("CANCELLED", "Job run cancelled by user", None, "FAILED", {}),
    ("FAILED", "OOM", "not json", "FAILED", {}),
])
def test_job_outcome(state, details, result, expected, rejected):
    outcome = job_outcome("00f1", state, details, "s3://logs/x/", result)
    assert outcome.state == expected and outcome.rejected == rejected
    if expected == "FAILED":
        assert state in outcome.detail and (details in outcome.detail)
    if result and "unreadable" not in outcome.detail and expected == "SUCCESS" and "report" in result:
        assert outcome.report == {"rows_ingested": 5}


@pytest.mark.parametrize("made", [
    lambda: step(),
    lambda: step("rerun", months=tuple(f"2020-{m:02d}" for m in range(1, 13)), run_id="r" * 80),
    lambda: step("initial", months=tuple(f"20{y}-{m:02d}" for y in range(10, 20) for m in range(1, 13)),
                 batch_ids=tuple("b" * 100 + str(i) for i in range(5))),  # too large: travels as an object
    lambda: step(batch_ids=("x" * 128,)),
])
def test_start_job_run_requests_pass_the_service_model_including_lengths_and_patterns(made):
    from tests.support.requests import problems

    request = start_job_run_request(SETTINGS, made(), 7)
    assert problems("emr-serverless", "StartJobRun", request) == []
    # EMR Serverless documents 10,280 characters per entry point argument (not in the model).
    assert max(len(a) for a in request["jobDriver"]["sparkSubmit"]["entryPointArguments"]) <= 10280


def test_the_strict_check_catches_what_botocore_lets_through():
    from tests.support.requests import problems

    request = start_job_run_request(SETTINGS, step(), 1)
    bad = {**request, "clientToken": "not valid!", "name": "n" * 300, "tags": {"bad:tag?": "x"}}
    found = "\n".join(problems("emr-serverless", "StartJobRun", bad))
    assert "clientToken" in found and "name: length 300" in found and "bad:tag?" in found


def test_the_state_machine_task_maps_one_to_one_onto_start_job_run():
    """RunJob's Parameters (infra/workflow.py) name exactly the members the request carries,
    each a real StartJobRun member; Step Functions lower-cases the first letter."""
    from infra.workflow import RUN_JOB_PARAMETERS
    from tests.support.requests import operation_model

    members = set(operation_model("emr-serverless", "StartJobRun").input_shape.members)
    request = for_step_functions(start_job_run_request(SETTINGS, step(), 1))
    assert set(request) == set(RUN_JOB_PARAMETERS)
    assert {p[0].lower() + p[1:] for p in RUN_JOB_PARAMETERS} <= members


def test_job_runs_log_to_cloudwatch_as_well_as_s3_and_say_where():
    from datadominion.job_request import cloudwatch_location

    monitoring = start_job_run_request(SETTINGS, step(), 1)["configurationOverrides"]["monitoringConfiguration"]
    assert monitoring["s3MonitoringConfiguration"] == {"logUri": "s3://logs/emr/"}
    cloudwatch = monitoring["cloudWatchLoggingConfiguration"]
    assert cloudwatch["enabled"] is True and cloudwatch["logGroupName"] == "/aws/emr-serverless/datadominion-dev"
    assert cloudwatch_location(SETTINGS, "00f123") == (
        "/aws/emr-serverless/datadominion-dev:datadominion/applications/00fabc123/jobs/00f123/")


def test_the_dashboard_link_is_asked_for_with_a_valid_request_and_is_best_effort(monkeypatch):
    import boto3
    from botocore.stub import Stubber

    from lambdas import wiring
    from lambdas.settings import LambdaSettings

    settings = LambdaSettings(environment="test", ledger_table="t", job_settings=json.loads(SETTINGS.to_json()))
    emr = boto3.client("emr-serverless", region_name="ap-south-1")
    monkeypatch.setattr(wiring, "client", lambda service: emr)
    with Stubber(emr) as stub:  # the stubber checks the request against the service model
        stub.add_response("get_dashboard_for_job_run", {"url": "https://p-00f123.emrappui-prod.ap-south-1.amazonaws"
                                                               ".com/shs/?authToken=x"},
                          {"applicationId": "00fabc123", "jobRunId": "00f123"})
        stub.add_client_error("get_dashboard_for_job_run", "ResourceNotFoundException")
        assert wiring.dashboard_url(settings, "00f123").startswith("https://p-00f123")
        assert wiring.dashboard_url(settings, "00f999") == ""


def test_a_successful_job_may_reject_some_batches():
    result = json.dumps({"state": "SUCCESS", "report": {"rows_ingested": 1}, "rejected": {"2024-03/b2": "rule x"}})
    outcome = job_outcome("00f1", "SUCCESS", "", "s3://logs/", result)
    assert outcome.succeeded and outcome.rejected == {"2024-03/b2": "rule x"} and outcome.report["rows_ingested"] == 1
    legacy = job_outcome("00f1", "FAILED", "exit 1", "s3://logs/", json.dumps({"state": "REJECTED",
                                                                              "rejected": {"2024-03/b2": "x"}}))
    assert not legacy.succeeded and legacy.rejected == {"2024-03/b2": "x"}


def test_billed_usage_is_read_from_a_model_shaped_job_run_and_is_best_effort(monkeypatch):
    """The Stubber validates the response against the service model too: the field names the
    parser reads (billedResourceUtilization.vCPUHour, ...) are the model's."""
    from datetime import datetime, timezone

    import boto3
    from botocore.stub import Stubber

    from lambdas import wiring
    from lambdas.settings import LambdaSettings

    settings = LambdaSettings(environment="test", ledger_table="t", job_settings=json.loads(SETTINGS.to_json()))
    emr = boto3.client("emr-serverless", region_name="ap-south-1")
    monkeypatch.setattr(wiring, "client", lambda service: emr)
    when = datetime(2026, 11, 27, tzinfo=timezone.utc)
    job_run = {
        "applicationId": "00fabc123", "jobRunId": "00f123", "createdAt": when, "updatedAt": when,
        "arn": "arn:aws:emr-serverless:ap-south-1:123456789012:/applications/00fabc123/jobruns/00f123",
        "createdBy": "arn:aws:iam::123456789012:role/launcher", "executionRole": SETTINGS.execution_role_arn,
        "state": "SUCCESS", "stateDetails": "Job run completed.", "releaseLabel": "emr-7.12.0",
        "jobDriver": {"sparkSubmit": {"entryPoint": SETTINGS.entry_point}},
        "totalExecutionDurationSeconds": 95,
        "billedResourceUtilization": {"vCPUHour": 0.42, "memoryGBHour": 1.7, "storageGBHour": 0.0},
    }
    with Stubber(emr) as stub:
        stub.add_response("get_job_run", {"jobRun": job_run}, {"applicationId": "00fabc123", "jobRunId": "00f123"})
        stub.add_client_error("get_job_run", "ResourceNotFoundException")
        usage = wiring.job_run_usage(settings, "00f123")
        assert wiring.job_run_usage(settings, "00f999") == {}
    assert usage == {"vcpu_hours": 0.42, "memory_gb_hours": 1.7, "storage_gb_hours": 0.0, "seconds": 95.0}
    from datadominion.run_tasks import describe_usage

    assert describe_usage(usage) == "0.42 vCPU-h, 1.7 GB-h memory, 0 GB-h storage, 95 s billed"
