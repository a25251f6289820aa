"""AWS test doubles that are real moto: one ThreadedMotoServer per session (pyiceberg's and
pyarrow's S3 clients bypass in-process mocks), reset between tests."""

from __future__ import annotations

import io
import json
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from datadominion.adapters.dynamodb_ledger import STATE_INDEX, DynamoDbLedger
from datadominion.catalog import glue_catalog_settings, load_pyiceberg_catalog
from tests.support.iceberg_files import month_partitioned_table

REGION = "ap-south-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_objects(bucket: str, objects: Dict[str, bytes]) -> None:
    """Store many objects straight into the session's moto S3 backend (the server runs in this
    process): a test of what reads thousands of objects need not pay a PUT request for each."""
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["aws"]
    for key, body in objects.items():
        backend.put_object(bucket, key, body, disable_notification=True)


def create_ledger_table(dynamodb: Any, name: str) -> None:
    """The ledger table as the stack defines it (pk/sk and the by-state index)."""
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "state", "batch_key")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": STATE_INDEX,
            "KeySchema": [{"AttributeName": "state", "KeyType": "HASH"},
                          {"AttributeName": "batch_key", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )


def s3_object_created_event(bucket: str, key: str, size: int = 0, when: Optional[datetime] = None
                            ) -> Dict[str, Any]:
    """An S3 "Object Created" event as EventBridge delivers it (keys URL-encoded, as S3 does)."""
    from urllib.parse import quote_plus

    when = when or datetime.now(timezone.utc)
    return {
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
        "source": "aws.s3", "account": ACCOUNT, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0", "bucket": {"name": bucket},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "etag": "d41d8cd98f00b204e9800998ecf8427e",
                       "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R", "requester": ACCOUNT, "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


@dataclass
class FakeLambdaContext:
    function_name: str = "datadominion-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:datadominion-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)  # type: ignore[call-overload]


def put_json(s3: Any, bucket: str, key: str, value: Any) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(value).encode())


def parquet_bytes() -> bytes:
    """A small valid Parquet file, for what only needs a batch to exist."""
    sink = io.BytesIO()
    pq.write_table(pa.table({"cons_acct_key": [1, 2]}), sink)
    return sink.getvalue()


def land(aws: Any, month: str, batch_id: str, files: Optional[Dict[str, bytes]] = None, marker: bool = True) -> str:
    """Put a batch's files (and its _SUCCESS marker) in the landing bucket; the marker's key."""
    prefix = f"accounts_all/rpt_as_of_mo={month}/{batch_id}/"
    for name, body in ({"part-0.parquet": parquet_bytes()} if files is None else files).items():
        aws.s3.put_object(Bucket=aws.landing, Key=prefix + name, Body=body)
    if marker:
        aws.s3.put_object(Bucket=aws.landing, Key=prefix + "_SUCCESS", Body=b"")
    return prefix + "_SUCCESS"


def ledger(aws: Any) -> DynamoDbLedger:
    return DynamoDbLedger(aws.dynamodb, aws.ledger_table)


def summary_table_with_months(aws: Any, months: List[str]) -> Any:
    """An Iceberg summary table in moto Glue + S3, partitioned by month, one append per month."""
    catalog = load_pyiceberg_catalog(glue_catalog_settings(f"s3://{aws.warehouse}/", aws.catalog_properties))
    month_partitioned_table(catalog, f"{aws.database}.summary", months, rows_per_month=2)
    return catalog
