"""The Glue database of one environment. Its four Iceberg tables are created by the summary
job itself on its first run (CREATE TABLE IF NOT EXISTS with the configured schema,
partitioning and properties), so a deploy needs no manual step and the DDL lives in one place
(emr_jobs/tables.py)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_glue as glue
from constructs import Construct

from infra.nag import finding_account


class GlueDatabase(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, name: str, location: str) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.database = glue.CfnDatabase(self, "Database", catalog_id=cdk.Aws.ACCOUNT_ID,
                                         database_input=glue.CfnDatabase.DatabaseInputProperty(
                                             name=name, location_uri=location,
                                             description="DataDominion Iceberg tables: accounts_all, summary, "
                                                         "latest_summary, summary_changes"))
        stack = cdk.Stack.of(self)
        self.catalog_arn = stack.format_arn(service="glue", resource="catalog")
        self.database_arn = stack.format_arn(service="glue", resource="database", resource_name=name)
        self.tables_arn = self.table_arn("*")
        # How cdk-nag prints that ARN in a finding id (partition and region are literals here).
        self.tables_arn_finding = f"arn:aws:glue:{stack.region}:{finding_account(self)}:table/{name}/*"

    def table_arn(self, table: str) -> str:
        return cdk.Stack.of(self).format_arn(service="glue", resource="table", resource_name=f"{self.name}/{table}")
