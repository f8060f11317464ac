"""The layer rules, checked over the package's import graph (static: nothing is imported).

entry points (handler, cli, commands) -> application -> domain -> ports; only adapters talk to
AWS or HTTP. Imports under ``if TYPE_CHECKING:`` are types only and never run, so they are
allowed anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lambda" / "di_archiver"
NETWORK_LIBRARIES = ("boto3", "botocore", "httpx", "s3transfer")
# infra.bundling.LOCAL_ONLY (tests/infrastructure checks they agree; importing infra here would
# start jsii in a unit test).
LOCAL_ONLY = ("simulator", "commands", "cli.py", "query", "adapters/s3_partitions.py")


def runtime_imports(source: str) -> set[str]:
    """Modules a source file imports when it runs (``TYPE_CHECKING`` blocks excluded)."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module_files() -> dict[str, str]:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _under(module: str, *roots: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def violations(files: dict[str, str]) -> list[str]:
    """Every layer rule a file breaks, as ``file: first offending module (rule)``."""
    problems: dict[tuple[str, str], str] = {}
    for name, source in files.items():
        entry_point = name in {"handler.py", "cli.py"} or name.startswith("commands/")
        for module in sorted(runtime_imports(source)):
            rules = []
            if _under(module, *NETWORK_LIBRARIES) and not name.startswith("adapters/"):
                rules.append("only adapters talk to AWS or HTTP")
            if entry_point and _under(module, "di_archiver.domain"):
                rules.append("entry points call the application layer")
            if name.startswith("application/") and _under(module, "di_archiver.adapters"):
                rules.append("the application gets adapters injected")
            if name.startswith("domain/") and _under(
                module,
                "di_archiver.adapters",
                "di_archiver.application",
                "di_archiver.wiring",
                "aws_lambda_powertools",
            ):
                rules.append("the domain is plain Python")
            for rule in rules:
                problems.setdefault((name, rule), module)
    return [f"{name}: {module} ({rule})" for (name, rule), module in sorted(problems.items())]


def test_the_package_keeps_its_layers() -> None:
    # Given every module of the runtime package
    files = _module_files()
    assert "handler.py" in files
    assert any(n.startswith("application/") for n in files)
    # When its runtime imports are checked against the layer rules
    problems = violations(files)
    # Then none breaks one
    assert problems == []


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("commands/x.py", "import boto3", "only adapters"),
        ("domain/x.py", "def f():\n    from httpx import Client\n", "only adapters"),
        ("handler.py", "from di_archiver.domain.engine import ArchiveEngine", "entry points"),
        ("commands/x.py", "from di_archiver.domain import maintenance", "entry points"),
        ("application/x.py", "from di_archiver.adapters.s3_store import S3", "injected"),
        ("domain/x.py", "from di_archiver.wiring import build_runtime", "plain Python"),
    ],
)
def test_the_check_catches_each_kind_of_violation(name: str, source: str, expected: str) -> None:
    # Given a module breaking one rule (also inside a function: lazy imports count)
    # When it is checked
    problems = violations({name: source})
    # Then exactly that rule is reported
    assert len(problems) == 1
    assert expected in problems[0]


def test_type_only_imports_are_allowed() -> None:
    # Given an entry point that imports a domain type for annotations only
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import boto3\n"
    # When it is checked
    # Then nothing is reported
    assert violations({"handler.py": source}) == []


def lambda_import_closure(files: dict[str, str]) -> set[str]:
    """Every package module the handler can import, lazily or not (files as in violations)."""
    by_module = {
        "di_archiver." + name.removesuffix(".py").removesuffix("/__init__").replace("/", "."): name
        for name in files
    }
    seen: set[str] = set()
    todo = ["di_archiver.handler"]
    while todo:
        module = todo.pop()
        if module in seen or module not in by_module:
            continue
        seen.add(module)
        for imported in runtime_imports(files[by_module[module]]):
            parts = imported.split(".")
            todo.extend(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {by_module[m] for m in seen}


def test_the_lambda_never_imports_what_its_bundle_leaves_out() -> None:
    # Given the parts of the package the Lambda bundle leaves out (CLI-only code)
    local_only = LOCAL_ONLY
    # When every module the handler can reach is collected (lazy imports included)
    reached = lambda_import_closure(_module_files())
    # Then it reaches the application and its adapters, and nothing that is left out
    assert {"application/archive.py", "adapters/s3_store.py", "wiring.py"} <= reached
    assert not [m for m in reached if m.startswith(local_only)]
