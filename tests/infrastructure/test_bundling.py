"""Docker-free bundling: one real build (needs PyPI), and failures that must not pass silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_

from infra.bundling import (
    BundlingError,
    LocalPythonBundling,
    locked_requirements,
)

from .conftest import PROJECT_ROOT

ELF_MACHINE_AARCH64 = 183


@pytest.mark.slow
def test_local_bundling_builds_an_arm64_asset(tmp_path: Path) -> None:
    # Given an empty asset directory
    out = tmp_path / "asset"
    out.mkdir()
    # When bundled for the Lambda runtime
    done = LocalPythonBundling().try_bundle(
        str(out), image=lambda_.Runtime.PYTHON_3_13.bundling_image
    )
    # Then the runtime package and locked arm64 wheels are there, and boto3 is not
    assert done is True
    assert (out / "di_archiver" / "handler.py").is_file()
    assert not list((out / "di_archiver").rglob("__pycache__"))
    [core] = list((out / "pydantic_core").glob("*.so"))
    assert "cpython-313-aarch64-linux-gnu" in core.name
    assert (out / "aws_lambda_powertools").is_dir()
    assert (out / "httpx").is_dir()
    # cryptography verifies day certificates in the verify function: its Rust core must be the
    # aarch64 build (an x86_64 or source build would fail at import on Lambda)
    [rust] = list((out / "cryptography" / "hazmat" / "bindings").glob("_rust*.so"))
    header = rust.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64
    [cffi] = list(out.glob("_cffi_backend*.so"))
    assert "aarch64" in cffi.name
    assert not (out / "boto3").exists()
    assert not (out / "botocore").exists()


def test_requirements_come_from_the_lock_without_runtime_provided_packages() -> None:
    requirements = locked_requirements()
    names = {line.split("==")[0] for line in requirements}
    assert {"httpx", "pydantic", "aws-lambda-powertools", "cryptography"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "duckdb", "aws-cdk-lib", "pytest"}
    assert all("==" in line for line in requirements)


def test_bundling_raises_instead_of_skipping_when_it_cannot_build(tmp_path: Path) -> None:
    # Given a project without a lock file
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # When bundling / Then it raises (a False return would make CDK fall back to Docker)
    with pytest.raises(BundlingError, match="uv export"):
        LocalPythonBundling(project_root=tmp_path).try_bundle(
            str(tmp_path / "out"), image=lambda_.Runtime.PYTHON_3_13.bundling_image
        )
