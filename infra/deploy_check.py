"""`make deploy` runs this first: refuse, with the reason, a config that cannot be deployed.

    python -m infra.deploy_check <env> [<config dir>]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from datadominion.config import ConfigError
from infra.environment import load_environment_config
from infra.stacks import ENVIRONMENTS_DIR, placeholder_message


def main(argv: Sequence[str] = ()) -> int:
    args = list(argv) or sys.argv[1:]
    if len(args) not in (1, 2):
        print("usage: python -m infra.deploy_check <env> [<config dir>]", file=sys.stderr)
        return 2
    config_dir = Path(args[1]) if len(args) == 2 else ENVIRONMENTS_DIR
    try:
        env = load_environment_config(config_dir / f"{args[0]}.json")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if env.deployable_account is None:
        print(f"refusing to deploy: {placeholder_message(env)}", file=sys.stderr)
        return 2
    print(f"deploying {env.name} to account {env.account} in {env.region} "
          f"(bootstrap qualifier {env.bootstrap_qualifier})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
