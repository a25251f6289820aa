"""Landing bucket on S3 (AWS mode). The client is passed in: no module-level AWS clients."""

from __future__ import annotations

from typing import Any, List

from datadominion.storage import StoredObject


class S3Storage:
    def __init__(self, s3_client: Any, bucket: str):
        self.s3, self.bucket = s3_client, bucket

    def list(self, prefix: str) -> List[StoredObject]:
        found: List[StoredObject] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [StoredObject(o["Key"], int(o["Size"]), o.get("LastModified")) for o in page.get("Contents", [])]
        return sorted(found, key=lambda o: o.key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        # HTTP ranges: "bytes=0-3" (first four) or "bytes=-4" (last four).
        byte_range = f"bytes=-{-start}" if start < 0 else f"bytes={start}-{start + length - 1}"
        body = self.s3.get_object(Bucket=self.bucket, Key=key, Range=byte_range)["Body"]
        return bytes(body.read())[:length]

    def write_text(self, key: str, text: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"))

    def uri(self, key_or_prefix: str) -> str:
        return f"s3://{self.bucket}/{key_or_prefix}"
