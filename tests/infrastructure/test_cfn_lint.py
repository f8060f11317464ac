"""The synthesised templates pass cfn-lint (CloudFormation's own schema and rules)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import Synthesised


def test_templates_pass_cfn_lint(synth: Callable[..., Synthesised]) -> None:
    # Given the default template and the variant with the most optional resources
    templates = [
        synth().outdir / "DiArchiver.template.json",
        synth(objectLock={"mode": "GOVERNANCE", "days": 30}, alarmEmail="a@example.com").outdir
        / "DiArchiver.template.json",
    ]
    assert all(Path(t).is_file() for t in templates)
    # When cfn-lint checks them (errors and warnings). W3005 is ignored: CDK always adds a
    # DependsOn from a function to its role's policy and role, which is redundant, not wrong.
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    done = subprocess.run(
        [cfn_lint, *map(str, templates), "--format", "parseable", "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
        check=False,
    )
    # Then it finds nothing
    assert done.returncode == 0, done.stdout + done.stderr
