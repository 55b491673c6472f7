"""The layers of docs/architecture.md, checked: the import contracts of pyproject.toml
and the one way to open a transaction of one's own."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Where `sessionmaker()` may be called: the request's transaction (app/api/deps.py), a
# command's transaction (app/cli/database.py), and the helper that every deliberate short
# transaction goes through (app/db/session.py).
SESSIONMAKER_CALLERS = {Path("app/api/deps.py"), Path("app/cli/database.py"), Path("app/db/session.py")}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # --no-cache: no cache folder is left in the tree. PYTHONPATH makes `app` the copy
    # under `root`, whatever is installed.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "300"},  # one line per contract
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("app/domain/intake.py", "import pydantic", "The domain is pure Python"),
        ("app/db/base.py", "import app.staff.models", "import no feature"),
        ("app/platform/cpu.py", "import app.intake.service", "import no feature"),
        ("app/reporter/service.py", "import app.intake.service", "IntakeService is intake's own"),
        ("app/cases/service.py", "import app.intake.repository", "Intake's repository"),
        ("app/intake/router.py", "import app.staff.deps", "not from staff"),
        ("app/reporter/service.py", "import app.audit.service", "never reach staff logic"),
        ("app/client/render.py", "import app.db.session", "The investigator client"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    """The contracts can fail: the same tree with one forbidden import added is refused."""
    shutil.copytree(PROJECT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line or contract in line]
    assert any(contract in line for line in broken), result.stdout


def _sessionmaker_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "sessionmaker")
            or (isinstance(node.func, ast.Name) and node.func.id == "sessionmaker")
        )
    ]


def test_own_transactions_go_through_the_one_helper() -> None:
    """A transaction apart from the request's is opened with `own_transaction` only, so
    that the list of them in app/db/session.py stays complete."""
    stray = {
        f"{path.relative_to(PROJECT)}:{line}"
        for path in sorted((PROJECT / "app").rglob("*.py"))
        if path.relative_to(PROJECT) not in SESSIONMAKER_CALLERS
        for line in _sessionmaker_calls(path)
    }
    assert not stray, f"use own_transaction() and list it in app/db/session.py: {sorted(stray)}"


def test_every_module_that_opens_its_own_transaction_is_listed_where_the_rule_is_written() -> None:
    """The list of exceptions in app/db/session.py names each module (or its class) that
    opens a transaction apart from the request's, so that the list cannot drift."""
    rule = (PROJECT / "app/db/session.py").read_text().split('"""')[1]
    helpers = {Path("app/db/session.py"), Path("app/context.py")}  # where own_transaction is defined
    users = [
        path.relative_to(PROJECT)
        for path in sorted((PROJECT / "app").rglob("*.py"))
        if path.relative_to(PROJECT) not in helpers and "own_transaction(" in path.read_text()
    ]
    assert users, "no module opens its own transaction: the check below would prove nothing"
    unlisted = [
        str(path)
        for path in users
        if str(path) not in rule and _classes(path).isdisjoint(re.findall(r"\w+", rule))
    ]
    assert not unlisted, f"name these in the docstring of app/db/session.py: {unlisted}"


def _classes(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
