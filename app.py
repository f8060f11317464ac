#!/usr/bin/env python3
"""CDK entry point: read the context, validate it, build the stack (see README, Deploy)."""

import os

from aws_cdk import App, Environment

from infra.config import DeploymentConfig
from infra.stack import ArchiverStack, apply_nag

app = App()
config = DeploymentConfig.from_context(app.node.get_all_context())
ArchiverStack(
    app,
    config.stack_name,
    config=config,
    env=Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    ),
)
apply_nag(app)
app.synth()
