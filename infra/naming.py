"""Names derived from the environment: one place, so stacks, Lambdas and tests agree."""

from __future__ import annotations

from infra.environment import EnvironmentConfig

LOCK_POLL_SECONDS = 60


def glue_database(env: EnvironmentConfig) -> str:
    """The Glue database (= Iceberg namespace) of one environment's tables."""
    return f"datadominion_{env.name.replace('-', '_')}"


def stack_name(env: EnvironmentConfig) -> str:
    return f"DataDominion-{env.name}"
