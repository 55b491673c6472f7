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

from app.cli import jobs, server
from app.cli.server import write_private_key
from app.client import admin, commands, drills, identity

__all__ = ["cli", "main", "write_private_key"]

ON_THIS_MACHINE = "On this machine (the database of DATABASE_URL, or the embedded one)"
ON_THE_SERVER = "Through the running server (CLEANWINDOW_URL, CLEANWINDOW_TOKEN)"

cli = typer.Typer(
    name="cleanwindow",
    help="Clean Window: anonymous corruption reporting, triage and mock drills.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
users_cli = typer.Typer(
    help="Staff accounts: create and unlock work on the database here; "
    "list and deactivate go through the running server.",
    no_args_is_help=True,
)
jobs_cli = typer.Typer(
    help="Periodic background jobs, on the database here (a running `worker` runs them on schedule).",
    no_args_is_help=True,
)
keys_cli = typer.Typer(
    help="Key pairs for reading reports, made and kept on this machine.", no_args_is_help=True
)

cli.command()(server.serve)
cli.command()(jobs.worker)
# The investigators' side: talks to a running server.
cli.command("login")(commands.login)
# The administrators' and auditors' side: talks to a running server.
cli.command("stats")(admin.stats)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(jobs_cli, name="jobs")
cli.add_typer(commands.cases_cli, name="cases")
cli.add_typer(admin.audit_cli, name="audit")
# The drill coordinators' side: talks to a running server.
cli.add_typer(drills.drills_cli, name="drills")
# Custodians and supervisors: requests to learn a reporter's identity.
cli.add_typer(identity.identity_cli, name="identity")

db_cli.command("upgrade")(server.db_upgrade)
db_cli.command("grant")(server.db_grant)
users_cli.command("create", rich_help_panel=ON_THIS_MACHINE)(server.users_create)
users_cli.command("unlock", rich_help_panel=ON_THIS_MACHINE)(server.users_unlock)
users_cli.command("list", rich_help_panel=ON_THE_SERVER)(admin.users_list)
users_cli.command("deactivate", rich_help_panel=ON_THE_SERVER)(admin.users_deactivate)
users_cli.command("custodian", rich_help_panel=ON_THE_SERVER)(admin.users_custodian)
users_cli.command("email", rich_help_panel=ON_THE_SERVER)(admin.users_email)
jobs_cli.command("list")(jobs.jobs_list)
jobs_cli.command("run")(jobs.jobs_run)
keys_cli.command("generate")(server.keys_generate)
keys_cli.command("register")(commands.keys_register)


def main() -> None:
    # httpx imports its own command-line client (click, rich, pygments: a fifth of a second
    # or more) whenever those are installed, and typer installs them. Blocking that one
    # module makes httpx behave as it does without its optional `cli` extra, which it
    # supports; nothing here runs httpx's command line.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    cli()
