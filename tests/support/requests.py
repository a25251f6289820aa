"""Requests checked against the AWS service models botocore ships, strictly.

botocore's own client-side validation checks types, required members and minimum lengths;
the services also enforce maximum lengths, patterns and enums, which only fail in AWS.
:func:`problems` checks all of them (patterns as whole-string matches).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, List, Mapping

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


@cache
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text)
    except re.error:  # a construct Python's re lacks (e.g. \p{L}): not checked
        return None


def problems(service: str, operation: str, params: Mapping[str, Any]) -> List[str]:
    """Everything AWS would refuse in these parameters, each naming its path."""
    shape = operation_model(service, operation).input_shape
    found: List[str] = []
    report = ParamValidator().validate(dict(params), shape)
    if report.has_errors():
        found.append(report.generate_report())
    _walk(params, shape, operation, found)
    return found


def _walk(value: Any, shape: Shape, path: str, found: List[str]) -> None:
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in value.items():
            if name in shape.members:
                _walk(member, shape.members[name], f"{path}.{name}", found)
        return
    if shape.type_name == "list" and isinstance(value, list):
        _length(len(value), meta, path, found)
        for i, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{i}]", found)  # type: ignore[attr-defined]
        return
    if shape.type_name == "map" and isinstance(value, Mapping):
        _length(len(value), meta, path, found)
        for key, item in value.items():
            _walk(key, shape.key, f"{path} key {key!r}", found)  # type: ignore[attr-defined]
            _walk(item, shape.value, f"{path}[{key!r}]", found)  # type: ignore[attr-defined]
        return
    if shape.type_name == "string" and isinstance(value, str):
        _length(len(value), meta, path, found)
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"{path}: {value[:80]!r} does not match the pattern {meta['pattern']!r}")
        if shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} is not one of {shape.enum}")
    numeric = shape.type_name in ("integer", "long") and isinstance(value, int)
    if numeric and ("min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]):
        found.append(f"{path}: {value} is outside [{meta.get('min')}, {meta.get('max')}]")


def _length(length: int, meta: Mapping[str, Any], path: str, found: List[str]) -> None:
    if "min" in meta and length < meta["min"]:
        found.append(f"{path}: length {length} is below the minimum {meta['min']}")
    if "max" in meta and length > meta["max"]:
        found.append(f"{path}: length {length} is above the maximum {meta['max']}")
