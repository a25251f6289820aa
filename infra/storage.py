"""Buckets and the data key: landing (where feeds deliver), warehouse (Iceberg tables),
artifacts (job code, configs, job results) and access logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.environment import EnvironmentConfig
from infra.nag import acknowledge


class DataStorage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if env.retain_data else cdk.RemovalPolicy.DESTROY
        self.key = kms.Key(self, "DataKey", enable_key_rotation=True, removal_policy=removal,
                           description=f"DataDominion {env.name}: landing, warehouse, artifacts and ledger")
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot use KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, removal_policy=removal,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=cdk.Duration.days(
                max(env.log_retention_days, 1)))])
        acknowledge(self.access_logs, [(
            "AwsSolutions-S1",
            "This bucket is the destination of the other buckets' server access logs; logging it into itself "
            "would log its own log deliveries.")])

        def data_bucket(name: str, versioned: bool, **props: object) -> s3.Bucket:
            return s3.Bucket(
                self, name, encryption=s3.BucketEncryption.KMS, encryption_key=self.key, bucket_key_enabled=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=versioned,
                removal_policy=removal, server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{name.lower()}/", **props)  # type: ignore[arg-type]

        noncurrent = s3.LifecycleRule(id="expire-noncurrent-versions",
                                      noncurrent_version_expiration=cdk.Duration.days(30),
                                      abort_incomplete_multipart_upload_after=cdk.Duration.days(7))
        # Feeds deliver here; versioned so an overwritten or deleted delivery can be recovered.
        self.landing = data_bucket("Landing", True, event_bridge_enabled=True, lifecycle_rules=[noncurrent])
        # Iceberg data and metadata; Iceberg's own snapshots are the history, old versions expire fast.
        self.warehouse = data_bucket("Warehouse", True, lifecycle_rules=[s3.LifecycleRule(
            id="expire-noncurrent-versions", noncurrent_version_expiration=cdk.Duration.days(7),
            abort_incomplete_multipart_upload_after=cdk.Duration.days(2))])
        self.artifacts = data_bucket("Artifacts", True, lifecycle_rules=[
            noncurrent,
            s3.LifecycleRule(id="expire-job-results", prefix="job-results/", expiration=cdk.Duration.days(90)),
            s3.LifecycleRule(id="expire-job-logs", prefix="emr-logs/",
                             expiration=cdk.Duration.days(max(env.log_retention_days, 1))),
        ])
