"""The `cleanwindow` command: one tree of commands of two kinds.

The operator's commands (app.cli.server) work on this machine: they serve, migrate, make
key pairs, and create or unlock accounts in the database directly. The staff's commands
(app.client) talk to a running server over HTTP with a token, like any other API client,
and never touch the database. app.cli imports app.client, never the other way round.

Every heavy module (SQLAlchemy, Alembic, FastAPI, httpx, pydantic, cryptography) is
imported by the command that runs, not here: `cleanwindow --help` and a client command
must start in a fraction of a second. `bench/cli_bench.py` measures it.
"""

from __future__ import annotations

import sys

import typer

from app.cli import server
from app.cli.server import write_private_key
from app.client import commands

__all__ = ["cli", "main", "write_private_key"]

cli = typer.Typer(
    name="cleanwindow",
    help="Clean Window: anonymous corruption reporting, triage and mock drills.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
users_cli = typer.Typer(help="Staff accounts.", no_args_is_help=True)
keys_cli = typer.Typer(
    help="Key pairs for reading reports, made and kept on this machine.", no_args_is_help=True
)

cli.command()(server.serve)
# The investigators' side: talks to a running server.
cli.command("login")(commands.login)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(commands.cases_cli, name="cases")

db_cli.command("upgrade")(server.db_upgrade)
users_cli.command("create")(server.users_create)
users_cli.command("unlock")(server.users_unlock)
keys_cli.command("generate")(server.keys_generate)
keys_cli.command("register")(commands.keys_register)


def main() -> None:
    # httpx imports its own command-line client (click, rich, pygments: a fifth of a second
    # or more) whenever those are installed, and typer installs them. Blocking that one
    # module makes httpx behave as it does without its optional `cli` extra, which it
    # supports; nothing here runs httpx's command line.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    cli()
