"""mypy follows only the aws_cdk modules pyproject.toml lists (the package imports every AWS
service's module, and reading them all made a cold `make typecheck` ~2.5 min): a module the
stack imports but the list lacks would be Any, its calls unchecked."""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

from tests.support.paths import REPO


def cdk_modules_imported(root: Path) -> set[str]:
    found = set()
    for path in [root / "app.py", *sorted((root / "infra").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aws_cdk":
                found.add(str(node.module))
                found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("aws_"))
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "aws_cdk")
    return found


def followed_cdk_modules() -> set[str]:
    overrides = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    return {module for override in overrides if override.get("follow_imports") == "normal"
            for module in override["module"]}


def test_every_aws_cdk_module_the_stack_imports_is_type_checked():
    missing = cdk_modules_imported(REPO) - followed_cdk_modules()
    assert not missing, f"list these in pyproject.toml's follow_imports = \"normal\" override: {sorted(missing)}"


def test_an_unlisted_service_module_is_found(tmp_path):
    (tmp_path / "infra").mkdir()
    (tmp_path / "app.py").write_text("import aws_cdk as cdk\n")
    (tmp_path / "infra" / "queue.py").write_text(
        "from aws_cdk import Duration, aws_sqs as sqs\nfrom aws_cdk.aws_sns import Topic\n")
    assert cdk_modules_imported(tmp_path) - followed_cdk_modules() == {"aws_cdk.aws_sqs"}
