"""The operator's commands, which work on this machine: serve, migrate, manage staff
accounts in the database directly, make key pairs.

Each command imports what it needs when it runs (app.cli.database, FastAPI, the crypto
module): `cleanwindow --help` and the client commands, which share the command tree, must
not pay for them (bench/cli_bench.py measures it).
"""

from __future__ import annotations

import getpass
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from app.client.errors import fail
from app.domain.staff import Role

if TYPE_CHECKING:
    from app.domain.crypto import PrivateKey, PublicKey
    from app.settings import Settings

DEVELOPMENT_RECOVERY_KEY_FILE = "development-recovery.key"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # A second SIGTERM must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Apply migrations and serve the API and the web pages."""
    import asyncio

    import uvicorn

    from app.cli.database import database_url, load_settings, one_line_errors
    from app.main import create_app
    from app.platform.logging import configure_logging

    settings = load_settings()
    configure_logging("DEBUG" if settings.debug else settings.log_level, settings=settings)
    # Uvicorn shuts down gracefully on SIGTERM and then re-raises it with the handler it
    # found; with Python's default that kills the process before the embedded PostgreSQL
    # is stopped. Turning SIGTERM into SystemExit lets the cleanup below run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with one_line_errors(), database_url(settings) as url:
        if settings.recovery_public_key is None:  # production refuses this in Settings
            settings = settings.model_copy(
                update={"recovery_public_key": development_recovery_key(settings).to_text()}
            )
        if settings.migrate_on_start:
            asyncio.run(migrate_unless_newer(url))
        # In development the jobs run in here, so that this one command starts everything;
        # production runs `cleanwindow worker` beside the web replicas.
        application = create_app(settings.with_database_url(url), run_jobs=settings.jobs_in_serve)
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_config=None,  # keep our JSON logging
            access_log=False,  # uvicorn's access log carries client addresses
            proxy_headers=False,  # nothing here reads the client address, forwarded or not
            server_header=False,
        )


async def migrate_unless_newer(url: str) -> None:
    """Migrate a schema that is behind. One that is newer was migrated by a later release
    during a rolling deploy: Alembic cannot upgrade from a revision it does not know, and
    `/readyz` tells whether this version may serve on it."""
    from app.db.migrations import SchemaFit, database_schema, upgrade_database

    check = await database_schema(url)
    if check.fit is SchemaFit.BEHIND:
        await upgrade_database(url)
    elif check.fit is not SchemaFit.CURRENT:
        logging.getLogger("cleanwindow").warning(
            "not migrating: %s", check.explanation(), extra={"schema_revision": check.found}
        )


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Create the file with mode 0600 from the start (never chmod after writing), and never
    overwrite: a lost private key is a lost set of reports."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key.to_file_text())


def development_recovery_key(settings: Settings) -> PublicKey:
    """Development only: a recovery key pair kept in the data folder, so that a first run
    accepts reports that can still be read. Production requires RECOVERY_PUBLIC_KEY."""
    from app.domain.crypto import PrivateKey

    path = settings.data_dir / DEVELOPMENT_RECOVERY_KEY_FILE
    if path.exists():
        key = PrivateKey.from_file_text(path.read_text())
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = PrivateKey.generate()
        write_private_key(path, key)
    logging.getLogger("cleanwindow").warning(
        "development mode: reports are sealed to the recovery key in %s (fingerprint %s); "
        "set RECOVERY_PUBLIC_KEY for real use",
        path,
        key.public_key.fingerprint,
    )
    return key.public_key


def keys_generate(
    out: Path = typer.Option(..., "--out", help="Where to write the private key (mode 0600; never overwritten)."),
) -> None:
    """Make a key pair on this machine: the private key goes to FILE, the public key to
    standard output (register it, or use it as RECOVERY_PUBLIC_KEY)."""
    from app.domain.crypto import PrivateKey

    key = PrivateKey.generate()
    try:
        write_private_key(out, key)
    except FileExistsError:
        raise fail(f"{out} already exists; refusing to overwrite a private key") from None
    except OSError as error:
        raise fail(f"cannot write {out}: {error.strerror}") from None
    typer.echo(key.public_key.to_text())
    typer.echo(f"private key written to {out}; fingerprint {key.public_key.fingerprint}", err=True)


GRANT_TO_HELP = (
    "After migrating, in the same transaction, give this existing role exactly what the "
    "service and the worker need (and take back anything more); it must own nothing."
)


def db_upgrade(
    grant_to: str | None = typer.Option(None, "--grant-to", metavar="ROLE", help=GRANT_TO_HELP),
) -> None:
    """Migrate the database named by DATABASE_URL (or the embedded one) to the head."""
    import asyncio

    from app.cli.database import database_url, load_settings, one_line_errors
    from app.db.migrations import database_revision, upgrade_database

    settings = load_settings()
    with one_line_errors(), database_url(settings) as url:
        changes = asyncio.run(upgrade_database(url, grant_to=grant_to))
        revision = asyncio.run(database_revision(url))
    typer.echo(f"database schema at revision {revision}")
    if changes is not None:
        typer.echo(changes.summary())


def db_grant(role: str = typer.Argument(..., help="The existing role the service and the worker connect as.")) -> None:
    """Give ROLE exactly what the service and the worker need on the database as it stands
    (and take back anything more); `db upgrade --grant-to ROLE` does this after migrating."""
    import asyncio

    from app.cli.database import database_url, load_settings, one_line_errors
    from app.db.migrations import grant_database

    settings = load_settings()
    with one_line_errors(), database_url(settings) as url:
        changes = asyncio.run(grant_database(url, role))
    typer.echo(changes.summary())


def read_new_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password again: "):
            raise fail("the two passwords differ")
        return first
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise fail("no password on standard input")
    return password


def users_create(
    username: str = typer.Argument(..., help="Login name: 3-64 of a-z 0-9 . _ -"),
    role: Role = typer.Option(..., "--role", help="The account's role."),
    email: str | None = typer.Option(
        None, "--email", help="Where the account's notices go (new reports, deadlines; never content)."
    ),
) -> None:
    """Create a staff account; the password is read from standard input."""
    from app.cli.database import load_settings, with_staff_service

    password = read_new_password()
    settings = load_settings()
    user = with_staff_service(
        settings,
        lambda service: service.create_user(
            username, role, password, actor=None, now=service.context.clock(), email=email
        ),
    )
    notices = f", notices to {user.email}" if user.email else ""
    typer.echo(f"created {role.value} account {user.username!r}{notices}")


def users_unlock(username: str = typer.Argument(..., help="The locked account.")) -> None:
    """Lift a login lock at once and forget the failed attempts."""
    from app.cli.database import load_settings, with_staff_service

    settings = load_settings()
    user = with_staff_service(settings, lambda service: service.unlock(username, actor=None, now=service.context.clock()))
    typer.echo(f"unlocked {user.username!r}")
