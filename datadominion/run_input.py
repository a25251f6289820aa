"""The inputs an execution (or `datadominion process/rerun`) accepts, parsed and checked:

    an S3 "Object Created" event        -> register that batch, then apply what is pending
    {"sweep": true[, "retry_failed": true]} -> register every complete batch not yet known
    {"rerun": {"months": ["YYYY-MM", ...]}} -> recompute those months from accounts_all
    {"maintain": true}                  -> maintain the tables now (then apply what is pending)
    any of them plus "plan_only": true  -> say what the run would do; lock and write nothing
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Tuple

from datadominion.months import MonthError, month_of, parse_month

MAX_RERUN_MONTHS = 120


class RunInputError(ValueError):
    """An execution input (console re-run, sweep, event) that cannot be used."""


@dataclass(frozen=True)
class RunRequest:
    kind: str  # "event" | "sweep" | "rerun" | "maintain"
    marker_key: str = ""
    rerun_months: Tuple[str, ...] = ()
    retry_failed: bool = False  # also retry batches parked after too many failed attempts
    plan_only: bool = False  # preview: no lock, no registration, no job


def parse_run_input(payload: object, now: datetime) -> RunRequest:
    """The three documented inputs: an S3 Object Created event, {"sweep": true} (with
    ``"retry_failed": true`` to also retry parked batches), or
    {"rerun": {"months": ["YYYY-MM", ...]}}."""
    if not isinstance(payload, dict):
        raise RunInputError(f"input must be a JSON object, got {type(payload).__name__}")
    if "plan_only" in payload:
        if not isinstance(payload["plan_only"], bool):
            raise RunInputError(f'"plan_only" must be true or false, got {payload["plan_only"]!r}')
        rest = {k: v for k, v in payload.items() if k != "plan_only"}
        request = parse_run_input(rest or {"sweep": True}, now)
        return replace(request, plan_only=payload["plan_only"])
    if "rerun" in payload:
        rerun = payload["rerun"]
        months = rerun.get("months") if isinstance(rerun, dict) else None
        if not isinstance(months, list) or not months or not all(isinstance(m, str) for m in months):
            raise RunInputError('rerun input must look like {"rerun": {"months": ["2024-03", ...]}}')
        if len(set(months)) > MAX_RERUN_MONTHS:
            raise RunInputError(f"rerun names {len(set(months))} months; at most {MAX_RERUN_MONTHS} at a time")
        current = parse_month(month_of(now.date()))
        for month in months:
            try:
                index = parse_month(month)
            except MonthError as exc:
                raise RunInputError(f"rerun month {month!r}: {exc}") from exc
            if index > current:
                raise RunInputError(f"rerun month {month!r} is in the future")
        return RunRequest("rerun", rerun_months=tuple(sorted(set(months))))
    if "maintain" in payload:
        if payload["maintain"] is not True or set(payload) != {"maintain"}:
            raise RunInputError(f'maintenance input must be exactly {{"maintain": true}}, got {payload!r}')
        return RunRequest("maintain")
    if payload.get("sweep") is True:
        retry = payload.get("retry_failed", False)
        if not isinstance(retry, bool):
            raise RunInputError(f'"retry_failed" must be true or false, got {retry!r}')
        return RunRequest("sweep", retry_failed=retry)
    detail = payload.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("object"), dict) and "key" in detail["object"]:
        return RunRequest("event", marker_key=str(detail["object"]["key"]))
    raise RunInputError(
        'unrecognised input: expected an S3 "Object Created" event, {"sweep": true}, {"maintain": true} '
        'or {"rerun": {"months": ["YYYY-MM", ...]}}'
    )
