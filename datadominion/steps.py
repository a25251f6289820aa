"""A step: one unit of work for the summary job, planned by the launcher.

It travels as JSON (a job argument on EMR Serverless, a function argument locally), so it
is a plain dataclass with an explicit wire form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, List, Literal, Tuple

from datadominion.landing import batch_key

Mode = Literal["initial", "forward", "backfill", "rerun", "maintain"]
MODES: Tuple[str, ...] = ("initial", "forward", "backfill", "rerun", "maintain")
# Steps an operator (or the Plan's maintenance schedule) asks for: no batches; each request
# is new work (its own client token), its retries and redrives are not.
BATCHLESS_MODES: Tuple[str, ...] = ("rerun", "maintain")


@dataclass(frozen=True)
class StepBatch:
    month: str
    batch_id: str
    location: str  # folder URI holding the batch's part-*.parquet files

    @property
    def batch_key(self) -> str:
        return batch_key(self.month, self.batch_id)


@dataclass(frozen=True)
class Step:
    mode: Mode
    months: Tuple[str, ...]
    batches: Tuple[StepBatch, ...] = ()
    run_id: str = "manual"
    notes: Tuple[str, ...] = field(default=(), compare=False)
    attempt: int = field(default=1, compare=False)  # set by the ledger when the step starts

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"step mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.months:
            raise ValueError("a step needs at least one month")
        if list(self.months) != sorted(set(self.months)):
            raise ValueError(f"step months must be ascending and distinct, got {list(self.months)}")
        if self.mode in BATCHLESS_MODES and self.batches:
            raise ValueError(f"a {self.mode} step works on the tables and takes no batches")
        if self.mode not in BATCHLESS_MODES and not self.batches:
            raise ValueError(f"a {self.mode} step needs at least one batch")
        stray = sorted({b.month for b in self.batches} - set(self.months))
        if stray:
            raise ValueError(f"batches for months {stray} are not among the step's months")

    @cached_property
    def step_id(self) -> str:
        """Stable identity of the work: the same batches and mode always give the same id.
        Cached: a step of thousands of batches is asked for it once per batch."""
        material = json.dumps(
            {"mode": self.mode, "months": list(self.months), "batches": sorted(b.batch_key for b in self.batches)},
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "mode": self.mode,
            "months": list(self.months),
            "batches": [{"month": b.month, "batch_id": b.batch_id, "location": b.location} for b in self.batches],
            "run_id": self.run_id,
            "notes": list(self.notes),
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Step:
        batches: List[StepBatch] = [StepBatch(**b) for b in data.get("batches", [])]
        return cls(
            mode=data["mode"],
            months=tuple(data["months"]),
            batches=tuple(batches),
            run_id=data.get("run_id", "manual"),
            notes=tuple(data.get("notes", ())),
            attempt=int(data.get("attempt", 1)),
        )

    @classmethod
    def from_json(cls, text: str) -> Step:
        return cls.from_dict(json.loads(text))
