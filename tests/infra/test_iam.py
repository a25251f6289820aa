"""IAM of the roles whose calls do not run in this process, derived from what they must do.

* The state machine's role: every Task of the synthesized definition needs the actions the
  Step Functions service integration calls (Step Functions developer guide: "IAM policies
  for calling AWS Lambda / Amazon SNS / EMR Serverless"), including the alerts topic's key.
* The job's role (JVM side: Iceberg's GlueCatalog and S3FileIO, Hadoop's EMRFS, EMR
  Serverless itself): the table in docs/iam.md, written out below; the role must grant all
  of it and nothing it does not use.

The Python side (Lambdas, pyiceberg) is checked by execution: tests/infra/test_state_machine.py.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from infra.environment import load_environment_config
from tests.support.aws import ACCOUNT
from tests.support.iam import Deployment, Need, allowed, via
from tests.support.paths import ENVIRONMENTS, environment_file

STEP_ID = "0f" * 16
TABLES = ("accounts_all", "summary", "latest_summary", "summary_changes")


def deployment(template: Dict[str, Any], env: str) -> Deployment:
    return Deployment(template, {}, region=load_environment_config(environment_file(env)).region)


def only(d: Deployment, kind: str, prefix: str = "") -> str:
    [lid] = [lid for lid in d.logical_ids(kind) if lid.startswith(prefix)]
    return lid


def definition(d: Deployment) -> Dict[str, Any]:
    machine = d.resources[only(d, "AWS::StepFunctions::StateMachine")]
    return dict(json.loads(d.resolve(machine["Properties"]["DefinitionString"])))


def task_states(states: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    found = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        if state["Type"] == "Map":
            processor = state.get("ItemProcessor") or state["Iterator"]
            found.update(task_states(processor["States"]))
    return found


def state_machine_needs(d: Deployment) -> List[Need]:
    application = d.attribute(only(d, "AWS::EMRServerless::Application"), "Arn")
    job_role = d.attribute(only(d, "AWS::IAM::Role", "SparkJobRole"), "Arn")
    found: List[Need] = []
    for name, state in task_states(definition(d)["States"]).items():
        resource, parameters = state["Resource"], state.get("Parameters", {})
        if resource == "arn:aws:states:::lambda:invoke":
            found.append(Need("lambda:InvokeFunction", parameters["FunctionName"]))
        elif resource == "arn:aws:states:::sns:publish":
            topic = parameters["TopicArn"]
            found.append(Need("sns:Publish", topic))
            key = d.topic_key(topic)
            if key:  # an SSE-KMS topic: the publisher needs the key (Amazon SNS key management)
                found += [Need(a, key, via("sns", d.region)) for a in ("kms:GenerateDataKey", "kms:Decrypt")]
        elif resource == "arn:aws:states:::emr-serverless:startJobRun.sync":
            rule = f"arn:aws:events:{d.region}:{ACCOUNT}:rule/StepFunctionsGetEventsForEMRServerlessJobRule"
            found += [Need("emr-serverless:StartJobRun", application),
                      Need("emr-serverless:GetJobRun", f"{application}/jobruns/00fabc"),
                      Need("emr-serverless:CancelJobRun", f"{application}/jobruns/00fabc"),
                      *[Need(f"events:{a}", rule) for a in ("PutTargets", "PutRule", "DescribeRule")],
                      Need("iam:PassRole", job_role, (("iam:PassedToService", "emr-serverless.amazonaws.com"),))]
        else:
            raise AssertionError(f"state {name}: no IAM mapping for {resource}; add one here")
    return found


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_state_machine_role_allows_every_task_of_its_definition(synthesized, env):
    d = deployment(synthesized[env], env)
    role = d.role_of(only(d, "AWS::StepFunctions::StateMachine"))
    assert [str(n) for n in d.missing(role, state_machine_needs(d))] == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_top_level_task_has_a_catch_that_ends_the_run_cleanly(synthesized, env):
    """A task without a Catch that fails ends the execution with that task's error, skipping
    the rest of the failure path (the lock release, the notification)."""
    states = definition(deployment(synthesized[env], env))["States"]
    for name, state in states.items():
        if state["Type"] in ("Task", "Map"):
            catches = state.get("Catch", [])
            assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name} has no Catch"
    assert states["RunFailed"]["Type"] == "Fail"


def job_needs(d: Deployment, env: str) -> List[Need]:
    """docs/iam.md, "The job's role": what the job and EMR Serverless do with it."""
    landing, warehouse, artifacts = (d.name(only(d, "AWS::S3::Bucket", f"Storage{b}"))
                                     for b in ("Landing", "Warehouse", "Artifacts"))
    key = d.bucket_key(artifacts)
    assert key is not None and key == d.bucket_key(landing) == d.bucket_key(warehouse)
    database = f"datadominion_{env}"

    def s3(action: str, bucket: str, path: str) -> Need:
        return Need(action, f"arn:aws:s3:::{bucket}/{path}")

    def listing(bucket: str, prefix: str) -> Need:
        return Need("s3:ListBucket", f"arn:aws:s3:::{bucket}", (("s3:prefix", prefix),))

    batch = "accounts_all/rpt_as_of_mo=2024-01/b1/"
    table_files = f"{database}.db/summary/"
    glue = [f"arn:aws:glue:{d.region}:{ACCOUNT}:catalog", f"arn:aws:glue:{d.region}:{ACCOUNT}:database/{database}"]
    return [
        # EMR Serverless fetches the entry point, --py-files and spark.archives as the job role.
        *[s3("s3:GetObject", artifacts, f"jobs/{n}") for n in ("entrypoint.py", "datadominion-job.zip",
                                                               "job-deps.zip")],
        listing(artifacts, "jobs/"),
        # EMRFS (Hadoop FileSystem): the config, a large step, the result; each probed by LIST.
        s3("s3:GetObject", artifacts, "configs/pipeline.json"), listing(artifacts, "configs/pipeline.json/"),
        s3("s3:GetObject", artifacts, f"job-results/{STEP_ID}/1.step.json"),
        s3("s3:PutObject", artifacts, f"job-results/{STEP_ID}/1.json"),
        s3("s3:AbortMultipartUpload", artifacts, f"job-results/{STEP_ID}/1.json"),
        listing(artifacts, f"job-results/{STEP_ID}/"),
        # EMR Serverless writes the job's logs to the configured S3 log URI as the job role.
        s3("s3:PutObject", artifacts, "emr-logs/applications/app/jobs/run/SPARK_DRIVER/stdout.gz"),
        s3("s3:AbortMultipartUpload", artifacts, "emr-logs/applications/app/jobs/run/SPARK_DRIVER/stdout.gz"),
        listing(artifacts, "emr-logs/applications/"),
        # EMRFS lists a batch folder and reads its parts.
        listing(landing, batch), s3("s3:GetObject", landing, f"{batch}part-0.parquet"),
        # Iceberg S3FileIO: data, delete and metadata files; deletes on expiry/orphan removal;
        # multipart uploads of large files; listing for orphan-file removal.
        *[s3(a, warehouse, f"{table_files}data/rpt_as_of_mo=2024-01/00000-0.parquet")
          for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")],
        listing(warehouse, table_files),
        # SSE-KMS buckets: S3 uses the data key on the job's behalf.
        Need("kms:Decrypt", key, via("s3", d.region)), Need("kms:GenerateDataKey", key, via("s3", d.region)),
        # EMR Serverless publishes the job's CloudWatch logs as the job role.
        Need("logs:DescribeLogGroups", f"arn:aws:logs:{d.region}:{ACCOUNT}:log-group:*"),
        *[Need(a, f"arn:aws:logs:{d.region}:{ACCOUNT}:log-group:/aws/emr-serverless/datadominion-{env}:*")
          for a in ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")],
        # Iceberg GlueCatalog: namespace check, load/create/commit (commit = UpdateTable with
        # the previous metadata location as the optimistic-lock condition).
        *[Need("glue:GetDatabase", r) for r in glue],
        *[Need(f"glue:{a}", r) for a in ("GetTable", "CreateTable", "UpdateTable") for t in TABLES
          for r in glue + [f"arn:aws:glue:{d.region}:{ACCOUNT}:table/{database}/{t}"]],
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_job_role_grants_exactly_what_the_job_and_emr_serverless_use(synthesized, env):
    d = deployment(synthesized[env], env)
    role = only(d, "AWS::IAM::Role", "SparkJobRole")
    wanted = job_needs(d, env)
    assert [str(n) for n in d.missing(role, wanted)] == []
    unused = [f"{s.get('Sid')}: {action}" for s in d.role_statements(role) for action in
              (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
              if not any(n.action == action and allowed([s], n) for n in wanted)]
    assert unused == [], "granted but not in docs/iam.md's table"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_prefix_the_job_reads_or_writes_has_a_matching_list_grant(synthesized, env):
    """The class of finding: an object grant without the LIST Hadoop probes with first."""
    d = deployment(synthesized[env], env)
    role = only(d, "AWS::IAM::Role", "SparkJobRole")
    statements = d.role_statements(role)
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if not {"s3:GetObject", "s3:PutObject"} & set(actions):
            continue
        for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]):
            bucket, _, pattern = resource.partition("/")
            prefix = pattern.rstrip("*")
            probe = Need("s3:ListBucket", bucket, (("s3:prefix", f"{prefix}x/"),))
            assert allowed(statements, probe), f"{s.get('Sid')}: no s3:ListBucket for {resource}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_this_accounts_application_can_assume_the_job_role(synthesized, env):
    d = deployment(synthesized[env], env)
    role = d.resources[only(d, "AWS::IAM::Role", "SparkJobRole")]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    condition = d.resolve(trust["Condition"])
    assert condition["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    assert condition["ArnLike"]["aws:SourceArn"] == d.attribute(only(d, "AWS::EMRServerless::Application"), "Arn")
