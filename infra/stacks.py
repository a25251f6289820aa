"""One stack per environment, composed of the constructs; built from its environment config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import aws_cdk as cdk
from constructs import Construct

from datadominion.config import load_pipeline_config, parse_pipeline_config
from datadominion.job_request import JobSettings
from infra.catalog import GlueDatabase
from infra.emr import SparkApplication
from infra.environment import ACCOUNT_PLACEHOLDER, EnvironmentConfig, load_environment_config
from infra.functions import LauncherFunctions
from infra.ledger import LedgerTable
from infra.monitoring import Monitoring
from infra.nag import acknowledge, add_checks, bootstrap_assets_finding, logical_id
from infra.naming import glue_database, stack_name
from infra.packaging import BUILD, ROOT
from infra.storage import DataStorage
from infra.workflow import Workflow


class MissingAssets(RuntimeError):
    pass


class DataDominionStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, env_config: EnvironmentConfig,
                 pipeline_config: Dict[str, Any], lambda_asset: Path, job_assets: Path, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.env_config = e = env_config
        self.storage = DataStorage(self, "Storage", env=e)
        self.database = GlueDatabase(self, "Catalog", name=glue_database(e),
                                     location=f"s3://{self.storage.warehouse.bucket_name}/")
        self.ledger = LedgerTable(self, "Ledger", key=self.storage.key, retain=e.retain_data)
        self.spark = SparkApplication(self, "Spark", env=e, storage=self.storage, database=self.database,
                                      job_assets=job_assets, pipeline_config=pipeline_config)
        job_settings = JobSettings(
            application_id=self.spark.application_id, execution_role_arn=self.spark.job_role.role_arn,
            entry_point=self.spark.entry_point, py_files=self.spark.py_files, dependencies=self.spark.dependencies,
            config_uri=self.spark.config_uri, warehouse=f"s3://{self.storage.warehouse.bucket_name}/",
            log_uri=self.spark.log_uri, result_prefix=self.spark.result_prefix,
            timeout_minutes=e.emr.job_timeout_minutes, region=e.region, log_group=self.spark.log_group.log_group_name,
            driver_cores=e.emr.driver_cores, driver_memory_gb=e.emr.driver_memory_gb,
            executor_cores=e.emr.executor_cores, executor_memory_gb=e.emr.executor_memory_gb, tags=dict(e.tags))
        pipeline = parse_pipeline_config(pipeline_config)
        maintenance = pipeline.maintenance
        self.functions = LauncherFunctions(self, "Launcher", env=e, asset=lambda_asset, storage=self.storage,
                                           ledger=self.ledger, database=self.database, spark=self.spark,
                                           job_settings=job_settings,
                                           summary_table=pipeline_config["destination_table"],
                                           latest_summary_table=pipeline_config["latest_history_table"],
                                           source_table=pipeline.source_table, history_length=pipeline.history_length,
                                           maintenance=maintenance, expectations=pipeline.expectations)
        self.workflow = Workflow(self, "Workflow", env=e, storage=self.storage, functions=self.functions,
                                 spark=self.spark)
        self.monitoring = Monitoring(self, "Monitoring", env=e, workflow=self.workflow, functions=self.functions,
                                     maintenance=maintenance, expectations=pipeline.expectations)
        for name, value, description in (
            ("LandingBucket", self.storage.landing.bucket_name, "where feeds deliver accounts_all batches"),
            ("WarehouseBucket", self.storage.warehouse.bucket_name, "Iceberg table data"),
            ("ArtifactsBucket", self.storage.artifacts.bucket_name, "job code, config, results and EMR logs"),
            ("GlueDatabase", self.database.name, "Glue database of accounts_all, summary, latest_summary"),
            ("LedgerTable", self.ledger.table.table_name, "DynamoDB ledger (batches, lock, runs)"),
            ("StateMachineArn", self.workflow.state_machine.state_machine_arn, "start re-runs and sweeps here"),
            ("EmrApplicationId", self.spark.application_id, "EMR Serverless application"),
            ("AlertsTopicArn", self.workflow.topic.topic_arn, "subscribe operators here"),
            ("Dashboard", f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#dashboards:name="
                          f"DataDominion-{e.name}", "CloudWatch dashboard"),
        ):
            cdk.CfnOutput(self, name, value=value, description=description)
        self._acknowledge_cdk_helpers()
        if e.deployable_account is None:
            refuse_deploy(self, placeholder_message(e))
        for key, value in e.tags.items():
            cdk.Tags.of(self).add(key, value)

    def _acknowledge_cdk_helpers(self) -> None:
        """Findings on the Lambda-backed helpers CDK itself adds (not our code to change)."""
        for child in self.node.children:
            name = child.node.id
            if name.startswith("BucketNotificationsHandler"):
                acknowledge(child, [(
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    "CDK's helper that turns on EventBridge notifications for the landing bucket at deploy time; "
                    "it only writes its own logs.")])
            if name.startswith("Custom::CDKBucketDeployment"):
                acknowledge(child, [
                    ("AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                     "AWSLambdaBasicExecutionRole]", "CDK's BucketDeployment helper writes only its own logs."),
                    ("AwsSolutions-L1", "CDK's BucketDeployment helper pins its own runtime; it runs only during "
                                        "deploys to copy the job code and config."),
                    *[(f"AwsSolutions-IAM5[Action::{action}]",
                       "CDK's BucketDeployment grant on the artifacts bucket and its key, used only at deploy time "
                       "to copy the job code and config.")
                      for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*",
                                     "kms:ReEncrypt*", "kms:GenerateDataKey*")],
                    (f"AwsSolutions-IAM5[Resource::<{logical_id(self.storage.artifacts)}.Arn>/*]",
                     "BucketDeployment syncs jobs/ and configs/ of the artifacts bucket (prune deletes stale files)."),
                    (bootstrap_assets_finding(self, self.env_config.bootstrap_qualifier),
                     "BucketDeployment reads the job assets from the CDK bootstrap bucket."),
                ])


ENVIRONMENTS_DIR = ROOT / "configs" / "environments"


def placeholder_message(env: EnvironmentConfig) -> str:
    return (f"configs/environments/{env.name}.json has no account id ({ACCOUNT_PLACEHOLDER}): set \"account\" to "
            "the 12-digit id of the target account before deploying (docs/runbook.md#first-deploy)")


def refuse_deploy(stack: cdk.Stack, reason: str) -> None:
    """A CloudFormation rule that fails every change set of this template before any resource is
    touched: an environment-agnostic template would otherwise deploy into whatever account the
    caller's credentials reach. (Rules may only test parameters: this one tests the bootstrap
    version parameter every CDK template carries against a value it never has.)"""
    cdk.CfnRule(stack, "RefuseDeployWithoutAccount", assertions=[cdk.CfnRuleAssertion(
        assert_=cdk.Fn.condition_equals(cdk.Fn.ref("BootstrapVersion"), "no-account-id"),
        assert_description=reason)])


def build_environment(app: cdk.App, env_name: str, lambda_asset: Path = BUILD / "lambda-asset",
                      job_assets: Path = BUILD / "job", config_dir: Path = ENVIRONMENTS_DIR) -> DataDominionStack:
    """The stack of ``<config_dir>/<env_name>.json``; assets must be built first."""
    env_config = load_environment_config(config_dir / f"{env_name}.json")
    load_pipeline_config(ROOT / "configs" / "pipeline.json")  # validated here, shipped as JSON
    pipeline = json.loads((ROOT / "configs" / "pipeline.json").read_text())
    for path, what in ((lambda_asset, "Lambda asset"), (job_assets, "job assets")):
        if not (path.is_dir() and any(path.iterdir())):
            raise MissingAssets(f"{what} not found at {path}: run 'make package' (or 'make synth') first")
    stack = DataDominionStack(app, stack_name(env_config), env_config=env_config,
                              pipeline_config=pipeline, lambda_asset=lambda_asset, job_assets=job_assets,
                              env=cdk.Environment(account=env_config.deployable_account, region=env_config.region),
                              synthesizer=cdk.DefaultStackSynthesizer(qualifier=env_config.bootstrap_qualifier),
                              description=f"DataDominion {env_config.name}: event-driven account summary pipeline")
    add_checks(app)
    return stack
