"""The launcher's Lambda functions: one asset (datadominion + lambdas + their dependencies,
built by infra/packaging.py without Docker), one role and one log group per function."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from datadominion import telemetry
from datadominion.config import Expectations, Maintenance
from datadominion.feedback import REJECTED_NOTE
from datadominion.job_request import JobSettings
from datadominion.landing import SOURCE_PREFIX
from infra.catalog import GlueDatabase
from infra.emr import MANIFESTS_PREFIX, RESULTS_PREFIX, SparkApplication
from infra.environment import EnvironmentConfig
from infra.grants import allow
from infra.ledger import LedgerTable
from infra.nag import acknowledge, logical_id
from infra.retention import retention
from infra.storage import DataStorage


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    description: str
    memory_mb: int
    timeout_seconds: int


FUNCTIONS = (
    FunctionSpec("register", "Register: validate a landed batch and record it in the ledger", 512, 300),
    FunctionSpec("lock", "Lock: take or renew the one-writer lock", 256, 30),
    FunctionSpec("plan", "Plan: pending batches + summary metadata -> ordered steps", 1024, 120),
    FunctionSpec("record", "Record: a step's job outcome -> batch states", 256, 60),
    FunctionSpec("finish", "Finish: release the lock; on failure re-queue and say what failed", 256, 60),
)


# The ledger operations each function's code performs (DynamoDbLedger): Register and Record
# never release the lock, so they cannot delete; only Finish releases it.
LEDGER_OPERATIONS: Dict[str, Tuple[str, ...]] = {
    "register": ("GetItem", "PutItem", "Query"),
    "lock": ("GetItem", "PutItem", "UpdateItem"),
    "plan": ("GetItem", "PutItem", "UpdateItem", "Query"),
    "record": ("GetItem", "PutItem"),
    "finish": ("GetItem", "PutItem", "DeleteItem", "Query"),
}


# The amended-history events go to the account's default bus, where downstream teams' rules
# pick them up (source "datadominion", detail-type "Summary history amended").
EVENT_BUS = "default"


def via_service(service: str, scope: Construct) -> str:
    return f"{service}.{cdk.Stack.of(scope).region}.amazonaws.com"


class LauncherFunctions(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env: EnvironmentConfig, asset: Path,
                 storage: DataStorage, ledger: LedgerTable, database: GlueDatabase, spark: SparkApplication,
                 job_settings: JobSettings, summary_table: str, latest_summary_table: str, source_table: str,
                 history_length: int,
                 maintenance: Maintenance, expectations: Expectations) -> None:
        super().__init__(scope, construct_id)
        self.summary_table, self.latest_summary_table = summary_table, latest_summary_table
        self.source_table = source_table
        code = lambda_.Code.from_asset(str(asset))
        environment = {
            "DATADOMINION_ENVIRONMENT": env.name,
            "LEDGER_TABLE": ledger.table.table_name,
            "LANDING_BUCKET": storage.landing.bucket_name,
            "MANIFEST_PREFIX": f"s3://{storage.artifacts.bucket_name}/{MANIFESTS_PREFIX}",
            "SUMMARY_TABLE": f"{database.name}.{summary_table}",
            "LATEST_SUMMARY_TABLE": f"{database.name}.{latest_summary_table}",
            "SOURCE_TABLE": f"{database.name}.{source_table}",
            "HISTORY_LENGTH": str(history_length),
            "MAINTENANCE": maintenance.model_dump_json(),
            "EXPECTATIONS": expectations.model_dump_json(),
            "FUTURE_MONTH_TOLERANCE": str(env.run_policy.tolerance_months),
            "LOCK_LEASE_SECONDS": str(env.run_policy.lease_seconds),
            "MAX_ATTEMPTS": str(env.run_policy.max_attempts),
            "INCOMPLETE_AFTER_HOURS": str(env.run_policy.incomplete_after_hours),
            "JOB_SETTINGS": cdk.Stack.of(self).to_json_string(asdict(job_settings)),
            "EVENT_BUS": EVENT_BUS,
            "POWERTOOLS_SERVICE_NAME": telemetry.SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": telemetry.NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        self.functions: Dict[str, lambda_.Function] = {}
        for spec in FUNCTIONS:
            log_group = logs.LogGroup(self, f"{spec.name.title()}Logs",
                                      retention=retention(env.log_retention_days),
                                      removal_policy=cdk.RemovalPolicy.RETAIN if env.retain_data
                                      else cdk.RemovalPolicy.DESTROY)
            role = iam.Role(self, f"{spec.name.title()}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=f"DataDominion {spec.name} Lambda")
            role.add_to_policy(iam.PolicyStatement(sid="OwnLogGroup",
                                                   actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                                   resources=[log_group.log_group_arn]))
            function = lambda_.Function(
                self, spec.name.title(), runtime=lambda_.Runtime.PYTHON_3_14,
                architecture=lambda_.Architecture.X86_64, code=code, handler=f"lambdas.{spec.name}.handler",
                description=spec.description, memory_size=spec.memory_mb,
                timeout=cdk.Duration.seconds(spec.timeout_seconds), role=role, log_group=log_group,
                tracing=lambda_.Tracing.ACTIVE, environment=environment)
            self.functions[spec.name] = function
            acknowledge(role, [("AwsSolutions-IAM5[Resource::*]",
                                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.")])
        self._grant(storage, ledger, database, spark)

    def _grant(self, storage: DataStorage, ledger: LedgerTable, database: GlueDatabase,
               spark: SparkApplication) -> None:
        for name, role in self.roles.items():
            allow(role, "Ledger", [f"dynamodb:{op}" for op in LEDGER_OPERATIONS[name]],
                  [ledger.table.table_arn, f"{ledger.table.table_arn}/index/*"])
            # The data key encrypts the ledger (and the landing and artifacts buckets): usable only
            # through those services. DynamoDB checks DescribeKey and Decrypt for a table under a
            # customer managed key; S3 needs Decrypt to read and GenerateDataKey to write.
            allow(role, "DataKeyViaServices", ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
                  [storage.key.key_arn],
                  StringEquals={"kms:ViaService": [via_service(s, self) for s in ("dynamodb", "s3")]})
            acknowledge(role, [(f"AwsSolutions-IAM5[Resource::<{logical_id(ledger.table)}.Arn>/index/*]",
                                "Queries the ledger's by-state index (the only index of the table).")])
        self._grant_register(storage)
        self._grant_plan(storage, database)
        self._grant_record(storage, spark)

    @property
    def roles(self) -> Dict[str, iam.IRole]:
        roles = {name: function.role for name, function in self.functions.items()}
        assert all(role is not None for role in roles.values())
        return roles  # type: ignore[return-value]

    def _grant_register(self, storage: DataStorage) -> None:
        role, landing, artifacts = self.roles["register"], storage.landing, storage.artifacts
        allow(role, "InspectLanding", ["s3:GetObject"], [landing.arn_for_objects(f"{SOURCE_PREFIX}*")])
        allow(role, "ListLanding", ["s3:ListBucket"], [landing.bucket_arn],
              StringLike={"s3:prefix": [f"{SOURCE_PREFIX}*"]})
        allow(role, "WriteManifests", ["s3:PutObject"], [artifacts.arn_for_objects(f"{MANIFESTS_PREFIX}*")])
        self._grant_rejection_notes(role, storage)
        acknowledge(role, [
            (f"AwsSolutions-IAM5[Resource::<{logical_id(landing)}.Arn>/{SOURCE_PREFIX}*]",
             "Register reads the Parquet magic bytes of any batch under accounts_all/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{MANIFESTS_PREFIX}*]",
             "Register writes each batch's object list as manifests/<month>/<batch_id>.json."),
        ])

    def _grant_plan(self, storage: DataStorage, database: GlueDatabase) -> None:
        role, artifacts, warehouse = self.roles["plan"], storage.artifacts, storage.warehouse
        allow(role, "SummaryTableMetadata", ["glue:GetTable"],  # newest month; maintenance due; preview sizes
              [database.catalog_arn, database.database_arn, database.table_arn(self.summary_table),
               database.table_arn(self.latest_summary_table), database.table_arn(self.source_table)])
        allow(role, "LargeStepFiles", ["s3:PutObject"], [artifacts.arn_for_objects(f"{RESULTS_PREFIX}*")])
        allow(role, "IcebergMetadataFiles", ["s3:GetObject"], [warehouse.arn_for_objects("*/metadata/*")])
        acknowledge(role, [
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{RESULTS_PREFIX}*]",
             "Plan writes a step too large for a job argument as <step_id>/<attempt>.step.json under job-results/."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(warehouse)}.Arn>/*/metadata/*]",
             "Plan reads Iceberg metadata files only (never data files): manifest list and manifests."),
        ])

    def _grant_record(self, storage: DataStorage, spark: SparkApplication) -> None:
        role, artifacts = self.roles["record"], storage.artifacts
        allow(role, "JobRunDashboard", ["emr-serverless:GetDashboardForJobRun", "emr-serverless:GetJobRun"],
              [f"{spark.application_arn}/jobruns/*"])  # the Spark UI link; the billed usage
        allow(role, "JobResults", ["s3:GetObject"], [artifacts.arn_for_objects(f"{RESULTS_PREFIX}*")])
        bus = cdk.Stack.of(self).format_arn(service="events", resource="event-bus", resource_name=EVENT_BUS)
        allow(role, "AmendedHistoryEvents", ["events:PutEvents"], [bus])
        allow(role, "JobResultsMissing", ["s3:ListBucket"], [artifacts.bucket_arn],
              StringLike={"s3:prefix": [f"{RESULTS_PREFIX}*"]})
        self._grant_rejection_notes(role, storage)
        acknowledge(role, [
            (f"AwsSolutions-IAM5[Resource::<{logical_id(artifacts)}.Arn>/{RESULTS_PREFIX}*]",
             "Record reads the result object the job wrote for its step and attempt."),
            (f"AwsSolutions-IAM5[Resource::<{logical_id(spark.application)}.Arn>/jobruns/*]",
             "Record asks for the dashboard link and billed usage of the job runs of this one application "
             "(ids are generated)."),
        ])

    @staticmethod
    def _grant_rejection_notes(role: iam.IRole, storage: DataStorage) -> None:
        """Register and Record leave `_REJECTED.json` beside a rejected batch's marker."""
        notes = storage.landing.arn_for_objects(f"{SOURCE_PREFIX}*/{REJECTED_NOTE}")
        allow(role, "RejectionNotes", ["s3:PutObject"], [notes])
        acknowledge(role, [(f"AwsSolutions-IAM5[Resource::<{logical_id(storage.landing)}.Arn>/"
                            f"{SOURCE_PREFIX}*/{REJECTED_NOTE}]",
                            "Writes only the _REJECTED.json note of any rejected batch folder.")])

    @property
    def all(self) -> List[lambda_.Function]:
        return list(self.functions.values())
