"""Docker-free bundling: one real build (needs PyPI), and failures that must not pass silently."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_

from infra.bundling import (
    LOCAL_ONLY,
    BundlingError,
    LocalPythonBundling,
    compile_bytecode,
    locked_requirements,
    pyenv_python,
    runtime_python,
)
from tests.unit import test_layers

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
    # And, where a Python 3.13 is at hand, every module ships its bytecode (see below)
    compiled = list((out / "di_archiver").rglob("__pycache__/*.cpython-313.pyc"))
    if runtime_python() is not None:
        assert len(compiled) == len(list((out / "di_archiver").rglob("*.py")))
        assert list((out / "httpx").rglob("__pycache__/*.cpython-313.pyc"))
    [core] = list((out / "msgspec").glob("_core*.so"))
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
    # And the command line's parts (simulator, commands, DuckDB queries) stay out of it
    package = out / "di_archiver"
    assert (package / "application" / "archive.py").is_file()
    for local_only in LOCAL_ONLY:
        assert not (package / local_only).exists(), local_only


def test_the_bundle_leaves_out_what_the_import_graph_test_checks() -> None:
    # The unit test that proves the handler never imports these must check the same list.
    assert LOCAL_ONLY == test_layers.LOCAL_ONLY


def test_requirements_come_from_the_lock_without_runtime_provided_packages() -> None:
    requirements = locked_requirements()
    names = {line.split("==")[0] for line in requirements}
    assert {"httpx", "msgspec", "aws-lambda-powertools", "cryptography"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "duckdb", "aws-cdk-lib", "pytest"}
    # The runtime validates its settings without pydantic (only the CDK app uses it)
    assert not names & {"pydantic", "pydantic-core"}
    assert all("==" in line for line in requirements)


def test_bundling_raises_instead_of_skipping_when_it_cannot_build(tmp_path: Path) -> None:
    # Given a project without a lock file
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # When bundling / Then it raises (a False return would make CDK fall back to Docker)
    with pytest.raises(BundlingError, match="uv export"):
        LocalPythonBundling(project_root=tmp_path).try_bundle(
            str(tmp_path / "out"), image=lambda_.Runtime.PYTHON_3_13.bundling_image
        )


def test_bytecode_is_compiled_for_use_without_a_source_check(tmp_path: Path) -> None:
    # Given an asset tree (compiled here with this interpreter; the bundle uses the runtime's)
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 42\n")
    (package / "mod.py").write_text("def f() -> int:\n    return 7\n")
    # When its bytecode is compiled
    compile_bytecode(tmp_path, python=sys.executable)
    # Then each module has an unchecked-hash .pyc (PEP 552 flags 0b01): a read-only code
    # directory whose zip lost the sources' timestamps still loads it without recompiling
    tag = sys.implementation.cache_tag
    for name in ("__init__", "mod"):
        pyc = package / "__pycache__" / f"{name}.{tag}.pyc"
        assert pyc.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
        assert pyc.read_bytes()[4:8] == b"\x01\x00\x00\x00"


def test_a_pyenv_interpreter_of_the_runtime_version_is_found(tmp_path: Path) -> None:
    # Given pyenv versions: two 3.13 patch releases, a free-threaded 3.13 and another minor
    for version, binary in [
        ("3.13.2", "python3.13"),
        ("3.13.10", "python3.13"),
        ("3.13.11t", "python3.13"),
        ("3.12.9", "python3.12"),
    ]:
        path = tmp_path / "versions" / version / "bin" / binary
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    # When looked for / Then the newest plain 3.13 release is the one the bundle compiles with
    assert pyenv_python(tmp_path) == str(tmp_path / "versions/3.13.10/bin/python3.13")
    assert pyenv_python(tmp_path / "empty") is None
