"""Buckets and the data key: landing (where feeds deliver), warehouse (Iceberg tables),
artifacts (job code, configs, job results) and access logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from datadominion.feedback import REJECTED_NOTE
from datadominion.landing import SOURCE_PREFIX, month_folder
from infra.environment import EnvironmentConfig, Producer
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
        self.landing = data_bucket("Landing", True, event_bridge_enabled=True, lifecycle_rules=[noncurrent],
                                   object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED)
        self._grant_producers(env)
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

    def _grant_producers(self, env: EnvironmentConfig) -> None:
        """Each configured feed may put objects (and abort its multipart uploads) under its own
        batch folders, and use the data key for that through S3 only. Objects belong to this
        account whoever writes them (bucket-owner-enforced), so the job can read them."""
        region = cdk.Stack.of(self).region
        for producer in env.producers:
            principal = iam.ArnPrincipal(producer.principal_arn)
            self.landing.add_to_resource_policy(iam.PolicyStatement(
                sid=f"Deliver{producer.name.title().replace('-', '')}", principals=[principal],
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[self.landing.arn_for_objects(producer_objects(producer))]))
            self.landing.add_to_resource_policy(iam.PolicyStatement(  # why a delivery was rejected
                sid=f"ReadRejections{producer.name.title().replace('-', '')}", principals=[principal],
                actions=["s3:GetObject"],
                resources=[self.landing.arn_for_objects(f"{producer_objects(producer)}/{REJECTED_NOTE}")]))
            # Through S3 only. Not narrowed by the landing bucket's ARN (encryption context): the
            # bucket already references the key, and a key policy naming the bucket would make a
            # circular dependency CloudFormation refuses; the bucket policy above confines writes.
            self.key.add_to_resource_policy(iam.PolicyStatement(
                sid=f"Encrypt{producer.name.title().replace('-', '')}Deliveries", principals=[principal],
                actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=["*"],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}))


def producer_objects(producer: Producer) -> str:
    """The keys a producer may write: its batch folders in every month."""
    if not producer.batch_prefix:
        return f"{SOURCE_PREFIX}*"
    return f"{month_folder('*')}{producer.batch_prefix}*"
