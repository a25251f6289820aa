"""cdk-nag AwsSolutions checks, and acknowledgments that each name one finding and why."""

from __future__ import annotations

from typing import Sequence, Tuple

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_checks(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, findings: Sequence[Tuple[str, str]]) -> None:
    """``findings``: (exact finding id, e.g. ``AwsSolutions-IAM5[Resource::*]``, specific reason)."""
    for finding_id, reason in findings:
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding_id, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The logical id of a construct's CloudFormation resource: how cdk-nag names it in finding ids."""
    child = construct.node.default_child if not isinstance(construct, cdk.CfnElement) else construct
    assert isinstance(child, cdk.CfnElement)
    stack = cdk.Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(child)))
