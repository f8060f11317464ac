#!/usr/bin/env python3
"""CDK entry point: read the context, validate it, build the stack (see README, Deploy)."""

import os
import sys

# jsii prints a framed banner (as b'!!...' through Python) on every synth when Node is older
# than its newest supported line. Node 20 is what this project is tested with (README), so
# acknowledge exactly that line; any other old Node still gets the warning.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment

from infra.config import ConfigError, DeploymentConfig
from infra.stack import ArchiverStack, apply_nag


def main() -> None:
    app = App()
    try:
        config = DeploymentConfig.from_context(app.node.get_all_context())
    except ConfigError as exc:
        # The message names each key and its fix; a traceback would only bury it.
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    ArchiverStack(
        app,
        config.stack_name,
        config=config,
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    apply_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
