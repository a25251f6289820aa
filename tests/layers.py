"""The import direction of the house, checked by `make lint`:

    datadominion (the core: domain + ports + adapters shared by the job and the Lambdas)
      <- emr_jobs (the Spark job)   <- lambdas (the state machine's tasks)   <- infra (CDK)
      <- localmode (the `datadominion` command), which may also use emr_jobs

A package may import only the packages listed for it; every import counts, also one inside a
function (a lazy import still ships with, and couples, the importing package). Tests may import
tests/support but never another test module: what two test modules share lives in support.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
ALLOWED: Dict[str, Set[str]] = {
    "datadominion": {"datadominion"},
    "emr_jobs": {"datadominion", "emr_jobs"},
    "lambdas": {"datadominion", "lambdas"},
    "infra": {"datadominion", "infra"},
    "localmode": {"datadominion", "emr_jobs", "localmode"},
}


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(root: Path = ROOT) -> List[str]:
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imports(path):
                top = module.split(".")[0]
                if top in ALLOWED and top not in allowed:
                    found.append(f"{path.relative_to(root)}:{line}: {package} must not import {module}")
    return found + test_module_imports(root)


def test_module_imports(root: Path = ROOT) -> List[str]:
    """Imports of a test module (tests/**/test_*.py or a conftest) from anywhere under tests/."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        for line, module in imports(path):
            last = module.split(".")[-1]
            if module.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                found.append(f"{path.relative_to(root)}:{line}: import {module}: shared test helpers belong in "
                             "tests/support")
    return found


def main() -> int:
    problems = violations()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"import direction: {'ok' if not problems else f'{len(problems)} violation(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
