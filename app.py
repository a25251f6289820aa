"""CDK entry point: `cdk synth -c env=dev` / `cdk deploy -c env=prod` builds that environment
(`-c config_dir=<dir>` reads `<dir>/<env>.json` instead of configs/environments/)."""

import sys
from pathlib import Path

import aws_cdk as cdk

from datadominion.config import ConfigError
from infra.stacks import ENVIRONMENTS_DIR, MissingAssets, build_environment

app = cdk.App()
env_name = app.node.try_get_context("env")
if not env_name:
    sys.exit("choose an environment: cdk synth -c env=<name> (configs/environments/<name>.json)")
try:
    config_dir = app.node.try_get_context("config_dir")
    build_environment(app, str(env_name), config_dir=Path(config_dir) if config_dir else ENVIRONMENTS_DIR)
except (ConfigError, MissingAssets) as exc:
    sys.exit(str(exc))
app.synth()
