"""The `cleanwindow` command starts fast because each command imports only what it needs,
and app.client (the HTTP side) never imports app.cli. Timings: bench/cli_bench.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.helpers import free_port

# What the server side needs, and nothing that lists, reads or answers cases over HTTP does
# (asyncio alone costs about as much as typer to import).
SERVER_SIDE = (
    "asyncio", "sqlalchemy", "alembic", "asyncpg", "fastapi", "starlette", "uvicorn", "app.settings", "app.db",
)
# What only talking to a server, decrypting or reading a drill campaign file needs, and help
# text does not. (pydantic is not among them: typer itself imports it.)
CLIENT_SIDE = (
    "httpx", "cryptography", "yaml", "app.client.api", "app.client.models", "app.client.sealing",
)

MODULES_AFTER_RUN = """
import json, sys
from app.cli import main
sys.argv = ["cleanwindow", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)), file=sys.__stderr__)
"""


def imported_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a process running `cleanwindow ARGS` had imported when it finished."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("CLEANWINDOW_")}
    result = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER_RUN, *args],
        env=clean | (env or {}), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return set(json.loads(result.stderr.splitlines()[-1]))


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted({name for name in modules for prefix in prefixes if name == prefix or name.startswith(prefix + ".")})


@pytest.mark.parametrize(
    "args",
    [
        ["--help"], ["cases", "--help"], ["cases", "list", "--help"], ["users", "--help"], ["audit", "list", "--help"],
        ["drills", "--help"], ["drills", "create", "--help"],
    ],
)
def test_help_imports_neither_the_server_nor_the_http_client(args: list[str]) -> None:
    modules = imported_by(*args)
    assert "app.cli" in modules
    assert loaded(modules, SERVER_SIDE + CLIENT_SIDE) == []


@pytest.mark.parametrize(
    "args",
    [
        ["cases", "list"],
        ["cases", "history", "00000000-0000-4000-8000-000000000000"],
        ["users", "list"],
        ["stats"],
        ["audit", "verify"],
        ["drills", "list"],
        ["drills", "scorecard", "00000000-0000-4000-8000-000000000000"],
    ],
)
def test_a_client_command_imports_nothing_of_the_server(args: list[str]) -> None:
    env = {"CLEANWINDOW_URL": f"http://127.0.0.1:{free_port()}", "CLEANWINDOW_TOKEN": "t"}
    modules = imported_by(*args, env=env)
    assert "httpx" in modules  # it did get as far as trying the server
    # Listing needs no decryption, and the HTTP client's own command line is never loaded.
    assert loaded(modules, (*SERVER_SIDE, "cryptography", "httpx._main", "rich")) == []


def test_keys_generate_imports_nothing_of_the_server_or_the_http_client(tmp_path: Path) -> None:
    modules = imported_by("keys", "generate", "--out", str(tmp_path / "new.key"))
    assert (tmp_path / "new.key").exists() and "cryptography" in modules
    assert loaded(modules, SERVER_SIDE + ("httpx", "app.client.api", "app.client.models")) == []


def test_the_client_package_never_imports_the_cli(project_root: Path) -> None:
    """app.cli wires the client's commands in; the other way round would be a cycle, even
    as an import inside a function."""
    for path in sorted((project_root / "app" / "client").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            assert not [name for name in names if name == "app.cli" or name.startswith("app.cli.")], path
