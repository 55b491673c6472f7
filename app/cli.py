"""The `cleanwindow` command: run the service, migrate, manage staff accounts."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import typer
from alembic.util.exc import CommandError as AlembicCommandError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.client.commands import cases_cli, keys_register, login
from app.domain.crypto import PrivateKey, PublicKey
from app.domain.errors import DomainError
from app.domain.staff import Role
from app.settings import Settings

T = TypeVar("T")

cli = typer.Typer(
    name="cleanwindow",
    help="Clean Window: anonymous corruption reporting, triage and mock drills.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
users_cli = typer.Typer(help="Staff accounts.", no_args_is_help=True)
keys_cli = typer.Typer(help="Key pairs for reading reports, made and kept on this machine.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")

DEVELOPMENT_RECOVERY_KEY_FILE = "development-recovery.key"


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"cleanwindow: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Whatever goes wrong reaches the operator as one line, never as a traceback."""
    try:
        yield
    except DomainError as error:
        raise fail(error.detail) from None
    except (OSError, SQLAlchemyError) as error:
        reason = getattr(error, "orig", None) or error
        raise fail(f"cannot use the database: {type(reason).__name__}: {reason}".splitlines()[0]) from None
    except subprocess.CalledProcessError as error:
        raise fail(f"the embedded PostgreSQL failed to start ({error.returncode}); see its log") from None
    except AlembicCommandError as error:
        raise fail(f"cannot migrate the database: {error}".splitlines()[0]) from None


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        reasons = "\n".join(
            f"  - {'.'.join(map(str, item['loc'])) or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise fail(f"the configuration is not usable:\n{reasons}", code=2) from None


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """`DATABASE_URL` when set; otherwise the embedded PostgreSQL, for as long as needed."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    from app.db.embedded import EmbeddedPostgresError, embedded_postgres

    try:
        with embedded_postgres(settings.data_dir) as url:
            yield url
    except EmbeddedPostgresError as error:
        raise fail(str(error)) from None


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # A second SIGTERM must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Apply migrations and serve the API and the web pages."""
    import uvicorn

    from app.db.migrations import upgrade_database
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
        asyncio.run(upgrade_database(url))
        application = create_app(settings.with_database_url(url))
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_config=None,  # keep our JSON logging
            access_log=False,  # uvicorn's access log carries client addresses
            proxy_headers=False,  # nothing here reads the client address, forwarded or not
            server_header=False,
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


@keys_cli.command("generate")
def keys_generate(
    out: Path = typer.Option(..., "--out", help="Where to write the private key (mode 0600; never overwritten)."),
) -> None:
    """Make a key pair on this machine: the private key goes to FILE, the public key to
    standard output (register it, or use it as RECOVERY_PUBLIC_KEY)."""
    key = PrivateKey.generate()
    try:
        write_private_key(out, key)
    except FileExistsError:
        raise fail(f"{out} already exists; refusing to overwrite a private key") from None
    except OSError as error:
        raise fail(f"cannot write {out}: {error.strerror}") from None
    typer.echo(key.public_key.to_text())
    typer.echo(f"private key written to {out}; fingerprint {key.public_key.fingerprint}", err=True)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database named by DATABASE_URL (or the embedded one) to the head."""
    from app.db.migrations import database_revision, upgrade_database

    settings = load_settings()
    with one_line_errors(), database_url(settings) as url:
        asyncio.run(upgrade_database(url))
        revision = asyncio.run(database_revision(url))
    typer.echo(f"database schema at revision {revision}")


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


def with_staff_service(settings: Settings, action: Callable[..., Awaitable[T]]) -> T:
    """Run `action(service)` in one committed transaction on the configured database."""
    from app.context import AppContext
    from app.db.migrations import database_revision, head_revision, upgrade_database
    from app.db.session import build_engine, build_sessionmaker
    from app.staff.service import StaffService

    async def run(url: str) -> T:
        if settings.database_url is None:
            await upgrade_database(url)  # the embedded database is ours to migrate
        elif (found := await database_revision(url)) != head_revision():
            raise fail(
                f"the database schema is at {found or 'no revision'}, not at this version's "
                f"{head_revision()}; if it is older, run `cleanwindow db upgrade` first"
            )
        engine = build_engine(settings.with_database_url(url))
        try:
            sessionmaker = build_sessionmaker(engine)
            async with sessionmaker() as session, session.begin():
                service = StaffService(session, AppContext.build(settings, sessionmaker))
                return await action(service)
        finally:
            await engine.dispose()

    with one_line_errors(), database_url(settings) as url:
        return asyncio.run(run(url))


@users_cli.command("create")
def users_create(
    username: str = typer.Argument(..., help="Login name: 3-64 of a-z 0-9 . _ -"),
    role: Role = typer.Option(..., "--role", help="The account's role."),
) -> None:
    """Create a staff account; the password is read from standard input."""
    password = read_new_password()
    settings = load_settings()
    user = with_staff_service(
        settings, lambda service: service.create_user(username, role, password, actor=None, now=datetime.now(UTC))
    )
    typer.echo(f"created {role.value} account {user.username!r}")


@users_cli.command("unlock")
def users_unlock(username: str = typer.Argument(..., help="The locked account.")) -> None:
    """Lift a login lock at once and forget the failed attempts."""
    settings = load_settings()
    user = with_staff_service(settings, lambda service: service.unlock(username, actor=None, now=datetime.now(UTC)))
    typer.echo(f"unlocked {user.username!r}")


# The investigators' side: talks to a running server (app/client).
cli.command("login")(login)
keys_cli.command("register")(keys_register)
cli.add_typer(cases_cli, name="cases")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
