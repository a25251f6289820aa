"""One synth per environment per test session (jsii start-up is paid once)."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from tests.support.paths import ENVIRONMENTS, REPO, environment_dir


@pytest.fixture(scope="session")
def cdk_context() -> Dict[str, Any]:
    return dict(json.loads((REPO / "cdk.json").read_text())["context"])


@pytest.fixture(scope="session")
def built_assets() -> None:
    from infra.packaging import build_job_assets, build_lambda_asset

    build_lambda_asset()
    build_job_assets()


@pytest.fixture(scope="session")
def synthesized(built_assets: None, cdk_context: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """env -> the synthesized CloudFormation template (cdk-nag runs as part of the synth)."""
    import aws_cdk as cdk

    from infra.stacks import build_environment

    templates = {}
    for env in ENVIRONMENTS:
        app = cdk.App(context=cdk_context)
        stack = build_environment(app, env, config_dir=environment_dir(env))
        assembly = app.synth()
        templates[env] = assembly.get_stack_by_name(stack.stack_name).template
    return templates
