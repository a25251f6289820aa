"""CDK entry point: `cdk synth -c env=dev` / `cdk deploy -c env=prod` builds that environment."""

import sys

import aws_cdk as cdk

from datadominion.config import ConfigError
from infra.stacks import MissingAssets, build_environment

app = cdk.App()
env_name = app.node.try_get_context("env")
if not env_name:
    sys.exit("choose an environment: cdk synth -c env=<name> (configs/environments/<name>.json)")
try:
    build_environment(app, str(env_name))
except (ConfigError, MissingAssets) as exc:
    sys.exit(str(exc))
app.synth()
