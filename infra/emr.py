"""The EMR Serverless Spark application, the job's execution role, and the job's code and
config uploaded to the artifacts bucket by the deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.catalog import GlueDatabase
from infra.environment import EnvironmentConfig
from infra.nag import acknowledge, logical_id
from infra.storage import DataStorage

JOBS_PREFIX = "jobs/"
CONFIGS_PREFIX = "configs/"
RESULTS_PREFIX = "job-results/"
LOGS_PREFIX = "emr-logs/"


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
        self.job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com"),
                                 description="DataDominion summary job on EMR Serverless")
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

    def _grant_job(self, storage: DataStorage, database: GlueDatabase) -> None:
        role = self.job_role

        def objects(bucket: s3.IBucket, prefix: str) -> str:
            return bucket.arn_for_objects(f"{prefix}*")

        role.add_to_policy(iam.PolicyStatement(sid="ReadLanding", actions=["s3:GetObject"],
                                               resources=[objects(storage.landing, "accounts_all/")]))
        role.add_to_policy(iam.PolicyStatement(sid="ListLanding", actions=["s3:ListBucket"],
                                               resources=[storage.landing.bucket_arn],
                                               conditions={"StringLike": {"s3:prefix": ["accounts_all/*"]}}))
        role.add_to_policy(iam.PolicyStatement(sid="ReadWriteWarehouse",
                                               actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                                               resources=[objects(storage.warehouse, "")]))
        role.add_to_policy(iam.PolicyStatement(sid="ListWarehouse", actions=["s3:ListBucket"],
                                               resources=[storage.warehouse.bucket_arn]))
        role.add_to_policy(iam.PolicyStatement(sid="ReadJobCode", actions=["s3:GetObject"],
                                               resources=[objects(storage.artifacts, JOBS_PREFIX),
                                                          objects(storage.artifacts, CONFIGS_PREFIX)]))
        role.add_to_policy(iam.PolicyStatement(sid="WriteResultsAndLogs", actions=["s3:PutObject", "s3:GetObject"],
                                               resources=[objects(storage.artifacts, RESULTS_PREFIX),
                                                          objects(storage.artifacts, LOGS_PREFIX)]))
        role.add_to_policy(iam.PolicyStatement(sid="IcebergTablesInGlue", actions=[
            "glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateTable", "glue:UpdateTable"],
            resources=[database.catalog_arn, database.database_arn, database.tables_arn]))
        role.add_to_policy(iam.PolicyStatement(sid="DataKey", actions=[
            "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
            "kms:DescribeKey"], resources=[storage.key.key_arn]))
        acknowledge(role, [
            (f"AwsSolutions-IAM5[Resource::<{logical_id(storage.landing)}.Arn>/accounts_all/*]",
             "The job reads any batch under accounts_all/; batch ids are not known at deploy time."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(storage.warehouse)}.Arn>/*]",
             "Iceberg writes data and metadata files under generated names anywhere in the warehouse bucket, "
             "which holds only this environment's tables."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(storage.artifacts)}.Arn>/{JOBS_PREFIX}*]",
             "The job reads its own code files under jobs/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(storage.artifacts)}.Arn>/{CONFIGS_PREFIX}*]",
             "The job reads the pipeline config under configs/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(storage.artifacts)}.Arn>/{RESULTS_PREFIX}*]",
             "The job writes one result object per step and attempt under job-results/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(storage.artifacts)}.Arn>/{LOGS_PREFIX}*]",
             "EMR Serverless writes driver and executor logs under emr-logs/ with generated names."),
            (f"AwsSolutions-IAM5[Resource::{database.tables_arn_finding}]",
             "The job creates and updates the three Iceberg tables of its own Glue database only."),
        ])

