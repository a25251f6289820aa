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


def finding_account(scope: IConstruct) -> str:
    """How cdk-nag prints the stack's account inside a finding id: the literal account of a
    deployable config, the pseudo parameter of an environment-agnostic one."""
    account = cdk.Stack.of(scope).account
    return "<AWS::AccountId>" if cdk.Token.is_unresolved(account) else account


def bootstrap_assets_finding(scope: IConstruct, qualifier: str) -> str:
    """The finding id of a grant on the CDK bootstrap assets bucket (``cdk bootstrap --qualifier``)."""
    region = cdk.Stack.of(scope).region
    return f"AwsSolutions-IAM5[Resource::arn:aws:s3:::cdk-{qualifier}-assets-{finding_account(scope)}-{region}/*]"
