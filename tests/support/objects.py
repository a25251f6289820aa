"""An in-memory object store for the tasks' small files (step files, job results), keyed by URI."""

from __future__ import annotations

from typing import Dict, Optional


class Objects:
    def __init__(self) -> None:
        self.stored: Dict[str, str] = {}

    def write(self, uri: str, text: str) -> None:
        self.stored[uri] = text

    def read(self, uri: str) -> Optional[str]:
        return self.stored.get(uri)
