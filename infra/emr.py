"""The EMR Serverless Spark application, the job's execution role, and the job's code and
config uploaded to the artifacts bucket by the deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import aws_cdk as cdk
from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from datadominion.landing import SOURCE_PREFIX
from infra.catalog import GlueDatabase
from infra.environment import EnvironmentConfig
from infra.grants import allow
from infra.nag import acknowledge, finding_account, logical_id
from infra.retention import retention
from infra.storage import DataStorage

JOBS_PREFIX = "jobs/"
CONFIGS_PREFIX = "configs/"
RESULTS_PREFIX = "job-results/"
LOGS_PREFIX = "emr-logs/"
MANIFESTS_PREFIX = "manifests/"  # written by Register: each batch's object list
ARTIFACT_PREFIXES = (JOBS_PREFIX, CONFIGS_PREFIX, RESULTS_PREFIX, LOGS_PREFIX)


class SparkApplication(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env: EnvironmentConfig, storage: DataStorage,
                 database: GlueDatabase, job_assets: Path, pipeline_config: Dict[str, Any]) -> None:
        super().__init__(scope, construct_id)
        e = env.emr
        self.application = emr.CfnApplication(
            self, "Application", release_label=e.release_label, type="Spark",
            name=f"datadominion-{env.name}",
            maximum_capacity=emr.CfnApplication.MaximumAllowedResourcesProperty(
                cpu=e.max_cpu, memory=e.max_memory, disk=e.max_disk),
            auto_start_configuration=emr.CfnApplication.AutoStartConfigurationProperty(enabled=True),
            auto_stop_configuration=emr.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=e.idle_timeout_minutes),
        )
        self.application_id = self.application.attr_application_id
        self.application_arn = self.application.attr_arn
        # Only this account's application may assume the role (confused-deputy protection).
        stack = cdk.Stack.of(self)
        self.job_role = iam.Role(self, "JobRole", description="DataDominion summary job on EMR Serverless",
                                 assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com").with_conditions({
                                     "StringEquals": {"aws:SourceAccount": stack.account},
                                     "ArnLike": {"aws:SourceArn": self.application_arn}}))
        self._grant_job(storage, database)

        # The job's code and the pipeline config (namespace = this environment's Glue database).
        config = dict(pipeline_config, namespace=database.name)
        s3deploy.BucketDeployment(self, "JobCode", destination_bucket=storage.artifacts,
                                  destination_key_prefix=JOBS_PREFIX, sources=[s3deploy.Source.asset(str(job_assets))],
                                  server_side_encryption=s3deploy.ServerSideEncryption.AWS_KMS,
                                  server_side_encryption_aws_kms_key_id=storage.key.key_id, retain_on_delete=False)
        s3deploy.BucketDeployment(self, "JobConfig", destination_bucket=storage.artifacts,
                                  destination_key_prefix=CONFIGS_PREFIX,
                                  sources=[s3deploy.Source.data("pipeline.json", json.dumps(config, indent=2))],
                                  server_side_encryption=s3deploy.ServerSideEncryption.AWS_KMS,
                                  server_side_encryption_aws_kms_key_id=storage.key.key_id, retain_on_delete=False)
        artifacts = storage.artifacts.bucket_name
        self.entry_point = f"s3://{artifacts}/{JOBS_PREFIX}entrypoint.py"
        self.py_files = f"s3://{artifacts}/{JOBS_PREFIX}datadominion-job.zip"
        self.dependencies = f"s3://{artifacts}/{JOBS_PREFIX}job-deps.zip"
        self.config_uri = f"s3://{artifacts}/{CONFIGS_PREFIX}pipeline.json"
        self.result_prefix = f"s3://{artifacts}/{RESULTS_PREFIX}"
        self.log_uri = f"s3://{artifacts}/{LOGS_PREFIX}"
        # Job runs also log to CloudWatch (driver stdout/stderr, executor stderr), where
        # operators search first; S3 keeps the full set with the artifacts.
        self.log_group = logs.LogGroup(self, "JobLogs", log_group_name=f"/aws/emr-serverless/datadominion-{env.name}",
                                       retention=retention(env.log_retention_days),
                                       removal_policy=cdk.RemovalPolicy.RETAIN if env.retain_data
                                       else cdk.RemovalPolicy.DESTROY)
        self._grant_logs()

    def _grant_logs(self) -> None:
        """EMR Serverless publishes the job's CloudWatch logs as the job role (EMR Serverless user
        guide, "Logging for EMR Serverless with Amazon CloudWatch": DescribeLogGroups, and
        CreateLogStream/PutLogEvents/DescribeLogStreams on the group)."""
        stack = cdk.Stack.of(self)
        self.job_role.add_to_policy(iam.PolicyStatement(
            sid="JobLogStreams", actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[self.log_group.log_group_arn]))
        self.job_role.add_to_policy(iam.PolicyStatement(
            sid="FindJobLogGroup", actions=["logs:DescribeLogGroups"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name="*",
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)]))
        acknowledge(self.job_role, [
            (f"AwsSolutions-IAM5[Resource::<{logical_id(self.log_group)}.Arn>]",
             "The job's own log group (its ARN ends in :* to cover the group's streams)."),
            (f"AwsSolutions-IAM5[Resource::arn:aws:logs:{stack.region}:{finding_account(self)}:log-group:*]",
             "DescribeLogGroups lists groups: it has no resource-level permission per group."),
        ])

    def _grant_job(self, storage: DataStorage, database: GlueDatabase) -> None:
        """What the job touches, and nothing else (docs/iam.md has the table and its sources).
        Hadoop's file system (EMRFS) probes a path with LIST before it opens or creates it, and
        without s3:ListBucket S3 answers 403 where it means 404: every prefix the job reads or
        writes through Hadoop has a list grant conditioned on that prefix."""
        role = self.job_role

        def statement(sid: str, actions: List[str], resources: List[str], **conditions: Any) -> None:
            allow(role, sid, actions, resources, **conditions)

        artifacts, landing, warehouse = storage.artifacts, storage.landing, storage.warehouse
        statement("ReadLanding", ["s3:GetObject"], [landing.arn_for_objects(f"{SOURCE_PREFIX}*")])
        statement("ListLanding", ["s3:ListBucket"], [landing.bucket_arn],
                  StringLike={"s3:prefix": [f"{SOURCE_PREFIX}*"]})
        statement("ReadWriteWarehouse", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                  [warehouse.arn_for_objects("*")])
        statement("ListWarehouse", ["s3:ListBucket"], [warehouse.bucket_arn])
        statement("ReadJobCodeAndConfig", ["s3:GetObject"],
                  [artifacts.arn_for_objects(f"{JOBS_PREFIX}*"), artifacts.arn_for_objects(f"{CONFIGS_PREFIX}*")])
        statement("ReadWriteResults", ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                  [artifacts.arn_for_objects(f"{RESULTS_PREFIX}*")])
        statement("WriteLogs", ["s3:PutObject", "s3:AbortMultipartUpload"],
                  [artifacts.arn_for_objects(f"{LOGS_PREFIX}*")])
        statement("ListArtifacts", ["s3:ListBucket"], [artifacts.bucket_arn],
                  StringLike={"s3:prefix": [f"{p}*" for p in ARTIFACT_PREFIXES]})
        statement("IcebergTablesInGlue",
                  ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"],
                  [database.catalog_arn, database.database_arn, database.tables_arn])
        statement("DataKeyViaS3", ["kms:Decrypt", "kms:GenerateDataKey"], [storage.key.key_arn],
                  StringEquals={"kms:ViaService": f"s3.{cdk.Stack.of(self).region}.amazonaws.com"})
        acknowledge(role, [
            (f"AwsSolutions-IAM5[Resource::<{logical_id(landing)}.Arn>/{SOURCE_PREFIX}*]",
             "The job reads any batch under accounts_all/; batch ids are not known at deploy time."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(warehouse)}.Arn>/*]",
             "Iceberg writes data and metadata files under generated names anywhere in the warehouse bucket, "
             "which holds only this environment's tables."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{JOBS_PREFIX}*]",
             "The job reads its own code files under jobs/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{CONFIGS_PREFIX}*]",
             "The job reads the pipeline config under configs/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{RESULTS_PREFIX}*]",
             "The job reads large steps and writes one result object per step and attempt under job-results/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{LOGS_PREFIX}*]",
             "EMR Serverless writes driver and executor logs under emr-logs/ with generated names."),
            (f"AwsSolutions-IAM5[Resource::{database.tables_arn_finding}]",
             "The job creates and updates the four Iceberg tables of its own Glue database only."),
        ])
