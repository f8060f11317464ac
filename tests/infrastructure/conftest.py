"""Synthesise stacks offline (bundling off) with cdk-nag, once per variant per session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# Node 20 is what this machine has; jsii warns loudly on every process start.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from aws_cdk.assertions import Template

from infra.config import DeploymentConfig
from infra.stack import ArchiverStack, apply_nag

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ORG = "64a0c0ffee0000000000a001"


def cdk_json_context() -> dict[str, Any]:
    """The context a fresh clone deploys with (cdk.json)."""
    context: dict[str, Any] = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    return context


@dataclass(frozen=True)
class Synthesised:
    stack: ArchiverStack
    template: Template
    outdir: Path

    @property
    def raw(self) -> dict[str, Any]:
        return self.template.to_json()  # type: ignore[no-any-return]

    def resources(self, cfn_type: str) -> dict[str, Any]:
        return self.template.find_resources(cfn_type)  # type: ignore[no-any-return]


def synthesise(context: Mapping[str, Any], outdir: Path) -> Synthesised:
    """Build the app the way app.py does, with bundling skipped, and synthesise it."""
    app = App(context={**context, "aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    config = DeploymentConfig.from_context(app.node.get_all_context())
    stack = ArchiverStack(app, config.stack_name, config=config)
    apply_nag(app)
    app.synth()
    return Synthesised(stack=stack, template=Template.from_stack(stack), outdir=outdir)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Synthesised]:
    """``synth(**overrides)`` over cdk.json's context; cached, since a synth costs seconds."""
    cache: dict[str, Synthesised] = {}

    def _synth(**overrides: Any) -> Synthesised:
        key = json.dumps(overrides, sort_keys=True)
        if key not in cache:
            context = {**cdk_json_context(), **overrides}
            cache[key] = synthesise(context, tmp_path_factory.mktemp("cdk.out"))
        return cache[key]

    return _synth


@pytest.fixture(scope="session")
def default(synth: Callable[..., Synthesised]) -> Synthesised:
    return synth()
