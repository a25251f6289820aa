"""Template assertions for dev and prod, and the cdk-nag gate."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from datadominion.config import Expectations, Maintenance, load_pipeline_config
from infra.environment import load_environment_config
from tests.support.paths import ENVIRONMENTS, PIPELINE_CONFIG, environment_file


def resources(template: Dict[str, Any], kind: str) -> Dict[str, Dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def props(template: Dict[str, Any], kind: str) -> List[Dict[str, Any]]:
    return [r.get("Properties", {}) for r in resources(template, kind).values()]


def env_config(env: str) -> Any:
    return load_environment_config(environment_file(env))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_buckets_are_encrypted_private_ssl_only_logged_and_kept_in_prod(synthesized, env):
    t = synthesized[env]
    buckets = resources(t, "AWS::S3::Bucket")
    assert len(buckets) == 4
    for logical_id, bucket in buckets.items():
        p = bucket["Properties"]
        assert p["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert p["LifecycleConfiguration"]["Rules"]
        assert bucket["DeletionPolicy"] == ("Retain" if env_config(env).retain_data else "Delete")
        if "AccessLogs" not in logical_id:
            assert "LoggingConfiguration" in p
            rule = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            assert rule["SSEAlgorithm"] == "aws:kms"
            assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    [notifications] = props(t, "Custom::S3BucketNotifications")  # CDK turns EventBridge on at deploy time
    assert notifications["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}
    assert "Landing" in notifications["BucketName"]["Ref"]
    policies = props(t, "AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies:
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in policy["PolicyDocument"]["Statement"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_ledger_glue_and_emr_application(synthesized, env):
    t, cfg = synthesized[env], env_config(env)
    [table] = resources(t, "AWS::DynamoDB::Table").values()
    p = table["Properties"]
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["SSESpecification"]["SSEEnabled"] is True and p["SSESpecification"]["SSEType"] == "KMS"
    assert [i["IndexName"] for i in p["GlobalSecondaryIndexes"]] == ["by-state"]
    assert table["DeletionPolicy"] == ("Retain" if env_config(env).retain_data else "Delete")
    assert p.get("DeletionProtectionEnabled", False) is env_config(env).retain_data
    [database] = props(t, "AWS::Glue::Database")
    assert database["DatabaseInput"]["Name"] == f"datadominion_{env}"
    [app] = props(t, "AWS::EMRServerless::Application")
    assert app["ReleaseLabel"] == "emr-7.12.0" and app["Type"] == "Spark"
    assert app["MaximumCapacity"] == {"Cpu": cfg.emr.max_cpu, "Memory": cfg.emr.max_memory, "Disk": cfg.emr.max_disk}
    assert app["AutoStartConfiguration"] == {"Enabled": True}
    assert app["AutoStopConfiguration"] == {"Enabled": True, "IdleTimeoutMinutes": cfg.emr.idle_timeout_minutes}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lambdas_are_traced_logged_and_configured(synthesized, env):
    t, cfg = synthesized[env], env_config(env)
    ours = [p for p in props(t, "AWS::Lambda::Function") if str(p.get("Handler", "")).startswith("lambdas.")]
    assert sorted(p["Handler"] for p in ours) == sorted(f"lambdas.{n}.handler" for n in
                                                          ("register", "lock", "plan", "record", "finish"))
    for p in ours:
        assert p["Runtime"] == "python3.14" and p["TracingConfig"] == {"Mode": "Active"}
        variables = p["Environment"]["Variables"]
        assert variables["DATADOMINION_ENVIRONMENT"] == env
        assert variables["LOCK_LEASE_SECONDS"] == str(cfg.landing.lock_lease_minutes * 60)
        assert variables["SUMMARY_TABLE"] == f"datadominion_{env}.summary"
        assert variables["LATEST_SUMMARY_TABLE"] == f"datadominion_{env}.latest_summary"
        pipeline = load_pipeline_config(PIPELINE_CONFIG)  # the Plan uses the job's own settings
        assert Maintenance.model_validate_json(variables["MAINTENANCE"]) == pipeline.maintenance
        assert Expectations.model_validate_json(variables["EXPECTATIONS"]) == pipeline.expectations
        assert "LoggingConfig" in p
    groups = props(t, "AWS::Logs::LogGroup")
    assert len(groups) >= 6 and all("RetentionInDays" in g for g in groups)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_state_machine_triggers_and_schedule(synthesized, env):
    t, cfg = synthesized[env], env_config(env)
    [sm] = props(t, "AWS::StepFunctions::StateMachine")
    assert sm["StateMachineType"] == "STANDARD" and sm["TracingConfiguration"] == {"Enabled": True}
    assert sm["LoggingConfiguration"]["Level"] == "ALL" and sm["LoggingConfiguration"]["IncludeExecutionData"]
    definition = json.dumps(sm["DefinitionString"])
    assert "arn:aws:states:::emr-serverless:startJobRun.sync" in definition
    assert '\\"MaxConcurrency\\":1' in definition
    assert '\\"ClientToken.$\\":\\"$.item.request.ClientToken\\"' in definition
    [rule] = props(t, "AWS::Events::Rule")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "accounts_all/*/_SUCCESS"}]
    [schedule] = props(t, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == cfg.schedule.sweep_expression
    assert json.loads(schedule["Target"]["Input"]) == {"sweep": True}
    assert schedule["State"] == ("ENABLED" if cfg.schedule.enabled else "DISABLED")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_state_machine_role_can_run_exactly_this_application(synthesized, env):
    t = synthesized[env]
    statements = [s for p in props(t, "AWS::IAM::Policy") for s in p["PolicyDocument"]["Statement"]]
    by_sid = {s.get("Sid"): s for s in statements if s.get("Sid")}
    assert by_sid["StartJobRun"]["Action"] == "emr-serverless:StartJobRun"
    assert set(by_sid["TrackJobRun"]["Action"]) == {"emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"}
    assert "StepFunctionsGetEventsForEMRServerlessJobRule" in json.dumps(by_sid["SyncEventsRule"]["Resource"])
    assert by_sid["PassJobRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_unscoped_wildcard_outside_tracing_and_log_delivery(synthesized, env):
    """Every statement with Resource "*" is one of the actions that take no resource ARN."""
    allowed = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
               "xray:GetSamplingTargets", "logs:CreateLogDelivery", "logs:GetLogDelivery",
               "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries",
               "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"}
    for p in props(synthesized[env], "AWS::IAM::Policy"):
        for statement in p["PolicyDocument"]["Statement"]:
            if statement["Resource"] == "*":
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert set(actions) <= allowed, statement


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarms_notify_and_outputs_exist(synthesized, env):
    t = synthesized[env]
    alarms = props(t, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 11 and all(a["AlarmActions"] for a in alarms)
    names = {a.get("MetricName") for a in alarms}
    assert {"ExecutionsFailed", "JobRunsFailed", "BatchesRejected", "LockHeldSeconds", "IncompleteBatches",
            "MonthOverdue", "AccountDropPct"} <= names
    health = {a["MetricName"]: a["Threshold"] for a in alarms if a["MetricName"].startswith(("DeleteFiles", "Snap"))}
    assert health == {"DeleteFiles_summary": 400, "DeleteFiles_latest_summary": 400, "Snapshots_summary": 800,
                      "Snapshots_latest_summary": 800}  # twice the maintenance thresholds of the pipeline config
    [topic] = props(t, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic
    assert len(resources(t, "AWS::CloudWatch::Dashboard")) == 1
    assert {"LandingBucket", "StateMachineArn", "LedgerTable", "EmrApplicationId", "AlertsTopicArn",
            "GlueDatabase"} <= set(t["Outputs"])


def test_cdk_nag_finds_nothing_unacknowledged_and_does_catch_findings(built_assets, cdk_context):
    """The shipped app synthesizes under AwsSolutions checks (the session synth above did too);
    the same checks stop a stack with an unencrypted, public-readable bucket."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    from infra.nag import add_checks

    app = cdk.App(context=cdk_context)
    stack = cdk.Stack(app, "NagControl")
    s3.Bucket(stack, "Careless")
    add_checks(app)
    with pytest.raises(Exception, match="AwsSolutions-S1|AwsSolutions-S10|Validation failed"):
        app.synth()


def test_unknown_environment_fails_at_synth_with_a_clear_error(built_assets, cdk_context):
    import aws_cdk as cdk

    from datadominion.config import ConfigError
    from infra.stacks import build_environment

    with pytest.raises(ConfigError, match="staging.json"):
        build_environment(cdk.App(context=cdk_context), "staging")


def _role_statements(template: Dict[str, Any], role_prefix: str) -> List[Dict[str, Any]]:
    found = []
    for policy in props(template, "AWS::IAM::Policy"):
        if any(str(r.get("Ref", "")).startswith(role_prefix) for r in policy["Roles"]):
            found += policy["PolicyDocument"]["Statement"]
    return found


def _actions(statement: Dict[str, Any]) -> List[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_our_roles_grant_named_actions_on_scoped_resources(synthesized, env):
    """Our own roles (job, Lambdas, state machine) never use wildcard actions; reads of the
    landing bucket stay under accounts_all/, Plan reads only Iceberg metadata, and only the
    job writes the warehouse."""
    t = synthesized[env]
    ours = ("SparkJobRole", "LauncherRegisterRole", "LauncherLockRole", "LauncherPlanRole",
            "LauncherRecordRole", "LauncherFinishRole", "WorkflowStateMachineRole")
    for prefix in ours:
        statements = _role_statements(t, prefix)
        assert statements, prefix
        for statement in statements:
            assert all("*" not in action for action in _actions(statement)), (prefix, statement)
    by_role = {prefix: {s.get("Sid"): s for s in _role_statements(t, prefix)} for prefix in ours}
    assert "/*/metadata/*" in json.dumps(by_role["LauncherPlanRole"]["IcebergMetadataFiles"]["Resource"])
    assert "accounts_all/*" in json.dumps(by_role["LauncherRegisterRole"]["InspectLanding"]["Resource"])
    assert _actions(by_role["LauncherRegisterRole"]["InspectLanding"]) == ["s3:GetObject"]
    assert "accounts_all/*" in json.dumps(by_role["SparkJobRole"]["ReadLanding"]["Resource"])
    writers = [p for p in ours for s in _role_statements(t, p)
               if "s3:PutObject" in _actions(s) and "Warehouse" in json.dumps(s["Resource"])]
    assert writers == ["SparkJobRole"]
    for prefix in ("LauncherLockRole", "LauncherFinishRole"):  # the ledger and its key, nothing else
        assert {sid for sid in by_role[prefix] if sid} == {"OwnLogGroup", "Ledger", "DataKeyViaServices"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_finish_may_delete_from_the_ledger_and_keys_are_used_only_through_their_services(synthesized, env):
    """Register and Record cannot release (delete) the lock item; the data key serves DynamoDB and
    S3 on a function's behalf, never a direct KMS call."""
    t = synthesized[env]
    for function in ("Register", "Lock", "Plan", "Record", "Finish"):
        by_sid = {s.get("Sid"): s for s in _role_statements(t, f"Launcher{function}Role")}
        ledger_actions = set(_actions(by_sid["Ledger"]))
        assert ("dynamodb:DeleteItem" in ledger_actions) is (function == "Finish"), function
        key = by_sid["DataKeyViaServices"]
        assert "kms:DescribeKey" in _actions(key)
        assert set(key["Condition"]["StringEquals"]["kms:ViaService"]) == {
            f"dynamodb.{env_config(env).region}.amazonaws.com", f"s3.{env_config(env).region}.amazonaws.com"}
    plan = {s.get("Sid"): s for s in _role_statements(t, "LauncherPlanRole")}
    assert _actions(plan["SummaryTableMetadata"]) == ["glue:GetTable"]
    tables = json.dumps(plan["SummaryTableMetadata"]["Resource"])  # newest month; health; preview sizes
    assert tables.count(":table/") == 3 and "/summary" in tables and "/latest_summary" in tables
    assert "/accounts_all" in tables


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_config_without_an_account_cannot_be_deployed_and_one_with_an_account_can(synthesized, env):
    """An environment-agnostic template carries a rule that fails every change set with the
    reason; a config with a literal account (and its own bootstrap qualifier) carries none."""
    t, cfg = synthesized[env], env_config(env)
    rules = t.get("Rules", {})
    assert f"/cdk-bootstrap/{cfg.bootstrap_qualifier}/version" == t["Parameters"]["BootstrapVersion"]["Default"]
    if cfg.deployable_account is None:
        [assertion] = rules["RefuseDeployWithoutAccount"]["Assertions"]
        assert "has no account id" in assertion["AssertDescription"] and f"{env}.json" in assertion["AssertDescription"]
        assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "BootstrapVersion"}, "no-account-id"]}
    else:
        assert "RefuseDeployWithoutAccount" not in rules
        assert f"cdk-{cfg.bootstrap_qualifier}-assets-{cfg.account}-{cfg.region}" in json.dumps(t)
        assert "hnb659fds" not in json.dumps(t)


def test_make_deploy_refuses_a_placeholder_config_with_the_reason(capsys):
    from infra.deploy_check import main
    from tests.support.paths import CI_ENVIRONMENTS

    assert main(["dev"]) == 2
    assert "refusing to deploy" in capsys.readouterr().err
    assert main(["ci", str(CI_ENVIRONMENTS)]) == 0
    assert "account 123456789012" in capsys.readouterr().out
    assert main(["staging"]) == 2 and "staging.json" in capsys.readouterr().err


def test_producers_may_deliver_only_into_their_own_batch_folders_and_use_the_key_through_s3(synthesized):
    t, cfg = synthesized["ci"], env_config("ci")
    assert cfg.producers and any(p.batch_prefix for p in cfg.producers)
    [landing_policy] = [p for p in props(t, "AWS::S3::BucketPolicy") if "Landing" in json.dumps(p["Bucket"])]
    deliveries = [s for s in landing_policy["PolicyDocument"]["Statement"] if s.get("Sid", "").startswith("Deliver")]
    assert len(deliveries) == len(cfg.producers)
    for producer, statement in zip(cfg.producers, deliveries):
        assert statement["Principal"] == {"AWS": producer.principal_arn}
        assert set(_actions(statement)) == {"s3:PutObject", "s3:AbortMultipartUpload"}
        resource = json.dumps(statement["Resource"])
        folders = f"rpt_as_of_mo=*/{producer.batch_prefix}*" if producer.batch_prefix else "*"
        suffix = f"/accounts_all/{folders}"
        assert resource.endswith(json.dumps(suffix)[1:-1] + '"]]}'), resource
    statements = landing_policy["PolicyDocument"]["Statement"]
    readers = [s for s in statements if s.get("Sid", "").startswith("ReadRejections")]
    assert [r["Principal"] for r in readers] == [{"AWS": p.principal_arn} for p in cfg.producers]
    for reader in readers:  # why a delivery was rejected, and nothing else
        assert _actions(reader) == ["s3:GetObject"] and json.dumps(reader["Resource"]).endswith('/_REJECTED.json"]]}')
    [key] = [r for lid, r in resources(t, "AWS::KMS::Key").items() if lid.startswith("StorageDataKey")]
    grants = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid", "").startswith("Encrypt")]
    assert [g["Principal"] for g in grants] == [{"AWS": p.principal_arn} for p in cfg.producers]
    for grant in grants:
        assert set(_actions(grant)) == {"kms:GenerateDataKey", "kms:Decrypt"}
        assert grant["Condition"]["StringEquals"]["kms:ViaService"] == f"s3.{cfg.region}.amazonaws.com"
    [landing] = [r for lid, r in resources(t, "AWS::S3::Bucket").items() if lid.startswith("StorageLanding")]
    assert landing["Properties"]["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert not [s for p in props(synthesized["dev"], "AWS::S3::BucketPolicy")
                for s in p["PolicyDocument"]["Statement"] if s.get("Sid", "").startswith("Deliver")]


def test_templates_that_cloudformation_would_refuse_fail_the_synth(built_assets, cdk_context):
    """CDK's CloudFormation validation runs as errors (cdk.json), so a circular dependency (the
    key policy naming the bucket the key encrypts, say) fails `make synth` and these tests."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sns as sns

    assert cdk_context["@aws-cdk/core:validateAgainstDefaultRules"] is True
    app = cdk.App(context=cdk_context)
    stack = cdk.Stack(app, "CycleControl")
    topic = sns.CfnTopic(stack, "Topic")
    bucket = s3.CfnBucket(stack, "Bucket", bucket_name=topic.attr_topic_name)
    topic.display_name = bucket.ref
    with pytest.raises(Exception, match="Circular|F3004|Validation failed|errors"):
        app.synth()
