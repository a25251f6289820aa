"""Where the repository's files are, and the environments the stack is synthesized for."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIPELINE_CONFIG = REPO / "configs" / "pipeline.json"

# dev and prod ship with the account placeholder; "ci" is a deployable shape: a literal
# 12-digit account, another region and a custom CDK bootstrap qualifier.
ENVIRONMENTS = ("dev", "prod", "ci")
CI_ENVIRONMENTS = REPO / "tests" / "infra" / "environments"


def environment_dir(env: str) -> Path:
    return CI_ENVIRONMENTS if env == "ci" else REPO / "configs" / "environments"


def environment_file(env: str) -> Path:
    return environment_dir(env) / f"{env}.json"
