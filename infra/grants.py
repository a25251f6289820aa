"""One way to write a grant: a named statement (its Sid says why) on a role."""

from __future__ import annotations

from typing import Any, Sequence

from aws_cdk import aws_iam as iam


def allow(role: iam.IRole, sid: str, actions: Sequence[str], resources: Sequence[str], **conditions: Any) -> None:
    """``conditions``: operator -> {key: value(s)}, e.g. ``StringLike={"s3:prefix": ["jobs/*"]}``."""
    role.add_to_principal_policy(iam.PolicyStatement(sid=sid, actions=list(actions), resources=list(resources),
                                                     conditions=conditions or None))
