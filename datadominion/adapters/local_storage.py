"""Landing folder on the local disk (local mode)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import List

from datadominion.storage import StoredObject


class LocalStorage:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def list(self, prefix: str) -> List[StoredObject]:
        base = self.root / prefix
        folder = base if base.is_dir() else base.parent
        if not folder.exists():
            return []
        found = []
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    found.append(StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc)))
        return sorted(found, key=lambda o: o.key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with open(self.root / key, "rb") as handle:
            if start < 0:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size + start))
            else:
                handle.seek(start)
            return handle.read(length)

    def write_text(self, key: str, text: str) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def uri(self, key_or_prefix: str) -> str:
        # Not Path.as_uri(): it percent-encodes the '=' of rpt_as_of_mo=..., which Spark does not decode.
        return "file://" + str(self.root / key_or_prefix) + ("/" if key_or_prefix.endswith("/") else "")


def write_local_text(uri: str, text: str) -> None:
    """Write a small text file at a file:// URI (local mode's counterpart of an S3 put)."""
    path = Path(uri.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
