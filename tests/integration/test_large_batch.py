"""A production month arrives as thousands of files: a batch of 2,000 objects under moto goes
through Register (concurrent magic-byte checks, manifest in S3, a small ledger item), Plan
(a small payload) and the job's footer validation (parallel on the executors, pyarrow S3)."""

from __future__ import annotations

import io
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdas import lock, plan, register
from tests.support.aws import REGION, FakeLambdaContext, s3_object_created_event, seed_objects

# Moto serves ~200 requests a second here: 2,000 objects cost ~20 s, 5,000 cost 55 s of CI
# for the same assertions (the ledger item and the Plan's payload do not grow with the count).
OBJECTS = 2000
BAD = 1234  # the one object that lacks a column
MONTH, BATCH = "2024-06", "feed-a-20240701"
CTX = FakeLambdaContext()


def parquet(columns) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({c: pa.array([1]) for c in columns}), sink)
    return sink.getvalue()


@pytest.mark.spark
def test_a_batch_of_2000_objects_registers_plans_and_validates_in_parallel(aws, spark, pipeline_config, capsys):
    columns = list(pipeline_config.source_types)
    good, bad = parquet(columns), parquet([c for c in columns if c != "acct_bal_am"])
    prefix = f"accounts_all/rpt_as_of_mo={MONTH}/{BATCH}/"
    keys = [f"{prefix}part-{i:05d}.parquet" for i in range(OBJECTS)]
    seed_objects(aws.landing, {k: bad if k == keys[BAD] else good for k in keys})
    aws.s3.put_object(Bucket=aws.landing, Key=prefix + "_SUCCESS", Body=b"")  # the marker through the API

    started = time.monotonic()
    registration = register.handler(s3_object_created_event(aws.landing, prefix + "_SUCCESS"), CTX)
    register_seconds = time.monotonic() - started
    assert registration["registered"] == [f"{MONTH}/{BATCH}"]
    item = aws.dynamodb.get_item(TableName=aws.ledger_table, Key={"pk": {"S": f"BATCH#{MONTH}/{BATCH}"},
                                                                  "sk": {"S": "BATCH"}})["Item"]
    item_bytes = len(json.dumps(item))
    manifest = json.loads(aws.s3.get_object(Bucket=aws.artifacts, Key=f"manifests/{MONTH}/{BATCH}.json")["Body"].read())
    assert len(manifest["objects"]) == OBJECTS and item_bytes < 4096

    assert lock.handler({"owner": "exec-1"}, CTX)["acquired"]
    planned = plan.handler({"owner": "exec-1", "rerun_months": []}, CTX)
    plan_bytes = len(json.dumps(planned))
    assert planned["count"] == 1 and plan_bytes < 16 * 1024

    from emr_jobs.footers import footer_problems

    options = {"endpoint_override": aws.endpoint.removeprefix("http://"), "scheme": "http", "region": REGION,
               "access_key": "testing", "secret_key": "testing"}
    started = time.monotonic()
    problems = footer_problems(spark, [f"s3://{aws.landing}/{k}" for k in keys], columns, options)
    footer_seconds = time.monotonic() - started
    assert problems == {f"s3://{aws.landing}/{keys[BAD]}": "lacks columns ['acct_bal_am']"}
    with capsys.disabled():
        print(f"\n{OBJECTS:,}-object batch: Register {register_seconds:.1f} s, ledger item {item_bytes} B, "
              f"Plan payload {plan_bytes} B, footers on executors {footer_seconds:.1f} s")
