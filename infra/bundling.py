"""Docker-free bundling of the Lambda asset: locked wheels for arm64 plus the runtime package.

The dependency list comes from ``uv.lock`` (``uv export``), so the function runs exactly the
versions the tests ran. Wheels are resolved for the Lambda platform (manylinux aarch64) from any
host, so ``cdk synth`` works on macOS and Linux alike without Docker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling

from di_archiver.errors import ArchiverError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_NAME = "di_archiver"
PYTHON_VERSION = "3.13"
LAMBDA_PLATFORM = "aarch64-manylinux2014"
# The Lambda runtime ships these; bundling them would add ~80 MB for nothing.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})
# An interpreter of PYTHON_VERSION to compile the asset's bytecode with (else uv finds one).
BUNDLE_PYTHON_ENV = "DI_ARCHIVER_BUNDLE_PYTHON"
# Parts of the package only the command line uses (the DI simulator, the commands, the DuckDB
# query engine and its S3 download). The handler never imports them (a unit test walks its
# import graph), so they stay out of the function's code.
LOCAL_ONLY = ("simulator", "commands", "cli.py", "query", "adapters/s3_partitions.py")


class BundlingError(ArchiverError):
    """Building the Lambda asset failed; the message says which step and why."""


def _uv() -> str:
    # `uv run` names its own binary in UV: the bundler then uses the very uv that runs it, also
    # when that uv is not on PATH (scripts/uv installs it into a project-local venv).
    return os.environ.get("UV") or "uv"


def _run(command: Sequence[str], *, cwd: Path) -> str:
    if command and command[0] == "uv":
        command = [_uv(), *command[1:]]
    try:
        done = subprocess.run(  # noqa: S603 (fixed argument lists, no shell)
            list(command), cwd=cwd, check=True, capture_output=True, text=True
        )
    except FileNotFoundError as exc:
        raise BundlingError(
            f"{command[0]} not found: install uv (https://docs.astral.sh/uv/)"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise BundlingError(
            f"bundling step failed ({' '.join(command[:3])} ...):\n{exc.stderr.strip()[-4000:]}"
        ) from exc
    return done.stdout


def locked_requirements(project_root: Path = PROJECT_ROOT) -> list[str]:
    """Pinned runtime requirements from ``uv.lock``, less what the Lambda runtime provides."""
    exported = _run(
        [
            "uv", "export", "--frozen", "--no-default-groups", "--no-dev", "--no-hashes",
            "--no-emit-project", "--no-header", "--no-annotate",
        ],
        cwd=project_root,
    )  # fmt: skip
    requirements = []
    for line in exported.splitlines():
        spec = line.split(";")[0].strip()
        if not spec or spec.startswith(("#", "-")):
            continue
        name = spec.split("==")[0].strip().lower().replace("_", "-")
        if name.split("[")[0] not in PROVIDED_BY_RUNTIME:
            requirements.append(line.strip())
    if not requirements:
        raise BundlingError("uv export returned no runtime requirements; is uv.lock current?")
    return requirements


def lock_fingerprint(project_root: Path = PROJECT_ROOT) -> str:
    """SHA-256 of ``uv.lock``: part of the asset hash so a dependency bump redeploys."""
    return hashlib.sha256((project_root / "uv.lock").read_bytes()).hexdigest()


@jsii.implements(ILocalBundling)
class LocalPythonBundling:
    """Installs locked arm64 wheels and copies the runtime package into the asset directory."""

    def __init__(self, *, project_root: Path = PROJECT_ROOT) -> None:
        self._root = project_root

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        """Build the asset in ``output_dir``; raise (never return False) so Docker is not tried."""
        out = Path(output_dir)
        with tempfile.TemporaryDirectory() as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text("\n".join(locked_requirements(self._root)) + "\n")
            _run(
                [
                    "uv", "pip", "install", "--quiet", "--no-deps", "--no-config",
                    "--target", str(out),
                    "--python-platform", LAMBDA_PLATFORM,
                    "--python-version", PYTHON_VERSION,
                    "--only-binary", ":all:",
                    "--no-compile",
                    "--requirement", str(requirements),
                ],
                cwd=self._root,
            )  # fmt: skip
        source = self._root / "lambda" / PACKAGE_NAME
        if not (source / "handler.py").is_file():
            raise BundlingError(f"{source}/handler.py is missing: the Lambda has no entry point")
        shutil.copytree(
            source,
            out / PACKAGE_NAME,
            dirs_exist_ok=True,
            ignore=_runtime_only(source),
        )
        python = runtime_python(self._root)
        if python is None:
            warnings.warn(
                f"no Python {PYTHON_VERSION} interpreter found: the Lambda asset ships without "
                "bytecode, so every cold start compiles each module it imports (~0.6 s of CPU). "
                f"Install one (`uv python install {PYTHON_VERSION}`) or point {BUNDLE_PYTHON_ENV} "
                "at one, then deploy again",
                stacklevel=2,
            )
        else:
            compile_bytecode(out, python=python, project_root=self._root)
        return True


def runtime_python(project_root: Path = PROJECT_ROOT) -> str | None:
    """An interpreter of the Lambda runtime's Python version: ``DI_ARCHIVER_BUNDLE_PYTHON``,
    else one uv finds, else one pyenv installed, else one uv installs (where it may download);
    ``None`` when there is none."""
    explicit = os.environ.get(BUNDLE_PYTHON_ENV)
    if explicit:
        return explicit
    try:
        found = _run(["uv", "python", "find", PYTHON_VERSION], cwd=project_root).strip()
    except BundlingError:
        installed = pyenv_python()
        if installed is not None:
            return installed
        try:
            _run(["uv", "python", "install", PYTHON_VERSION], cwd=project_root)
            found = _run(["uv", "python", "find", PYTHON_VERSION], cwd=project_root).strip()
        except BundlingError:
            return None
    return found or None


def pyenv_python(root: Path | None = None) -> str | None:
    """The newest ``PYTHON_VERSION`` patch release pyenv installed (under ``$PYENV_ROOT``).

    uv finds a pyenv interpreter only through pyenv's shims, which fail for a version the shell
    has not selected, so a deployer with 3.13 installed by pyenv would ship no bytecode.
    Free-threaded and other variant builds (``3.13.0t``) are not the Lambda runtime's.
    """
    base = root or Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    releases = []
    for binary in base.glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"):
        patch = binary.parent.parent.name.removeprefix(f"{PYTHON_VERSION}.")
        if patch.isdigit() and os.access(binary, os.X_OK):
            releases.append((int(patch), str(binary)))
    return max(releases)[1] if releases else None


def compile_bytecode(out: Path, *, python: str, project_root: Path = PROJECT_ROOT) -> None:
    """Ship bytecode: the Lambda's code directory is read-only, so without it every cold start
    compiles every imported module from source (~0.6 s of CPU).

    ``python`` must be the runtime's version. The ``.pyc`` files are unchecked-hash: the asset's
    zip does not keep the sources' timestamps, and the code never changes under a deployed
    function, so the bytecode is used without checking the source.
    """
    _run(
        [
            python, "-m", "compileall", "-q", "-j", "0",
            "--invalidation-mode", "unchecked-hash", str(out),
        ],
        cwd=project_root,
    )  # fmt: skip


def _runtime_only(source: Path) -> Callable[[str, list[str]], set[str]]:
    """A ``copytree`` ignore function: caches and the :data:`LOCAL_ONLY` parts of ``source``."""
    caches = shutil.ignore_patterns("__pycache__", "*.pyc")

    def ignore(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(source)
        local = {n for n in names if (relative / n).as_posix() in LOCAL_ONLY}
        return set(caches(directory, names)) | local

    return ignore


def bundling_options(*, image: DockerImage, project_root: Path = PROJECT_ROOT) -> BundlingOptions:
    """Bundling options whose local step always runs; Docker is only a documented fallback."""
    return BundlingOptions(
        image=image,
        local=LocalPythonBundling(project_root=project_root),
        # Reached only if local bundling is bypassed; fail loudly instead of shipping an empty zip.
        command=[
            "bash",
            "-c",
            "echo 'di-archiver bundles locally: see infra/bundling.py' && exit 1",
        ],
        # Not read by any tool: it puts the lock file's hash into the asset hash.
        environment={"DI_ARCHIVER_LOCK_SHA256": lock_fingerprint(project_root)},
    )
