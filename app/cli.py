"""The `cleanwindow` command: run the service, migrate, manage staff accounts."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from app.domain.errors import DomainError
from app.domain.staff import Role
from app.settings import Settings

cli = typer.Typer(
    name="cleanwindow",
    help="Clean Window: anonymous corruption reporting, triage and mock drills.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
users_cli = typer.Typer(help="Staff accounts.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"cleanwindow: {message}", err=True)
    return typer.Exit(code)


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
    from app.db.embedded import embedded_postgres

    with embedded_postgres(settings.data_dir) as url:
        yield url


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
    configure_logging("DEBUG" if settings.debug else settings.log_level)
    with database_url(settings) as url:
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


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database named by DATABASE_URL (or the embedded one) to the head."""
    from app.db.migrations import database_revision, upgrade_database

    settings = load_settings()
    with database_url(settings) as url:
        try:
            asyncio.run(upgrade_database(url))
            revision = asyncio.run(database_revision(url))
        except OSError as error:
            raise fail(f"cannot reach the database: {error}") from None
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


async def _create_user(settings: Settings, url: str, username: str, role: Role, password: str) -> str:
    from app.db.migrations import database_revision, head_revision, upgrade_database
    from app.db.session import build_engine, build_sessionmaker
    from app.domain.staff import PasswordHashing
    from app.staff.service import StaffService

    if settings.database_url is None:
        await upgrade_database(url)  # the embedded database is ours to migrate
    elif await database_revision(url) != head_revision():
        raise fail("the database schema is not current; run `cleanwindow db upgrade` first")

    engine = build_engine(settings.with_database_url(url))
    try:
        async with build_sessionmaker(engine)() as session, session.begin():
            service = StaffService.from_settings(session, settings, PasswordHashing())
            user = await service.create_user(username, role, password)
            return user.username
    finally:
        await engine.dispose()


@users_cli.command("create")
def users_create(
    username: str = typer.Argument(..., help="Login name: 3-64 of a-z 0-9 . _ -"),
    role: Role = typer.Option(..., "--role", help="The account's role."),
) -> None:
    """Create a staff account; the password is read from standard input."""
    password = read_new_password()
    settings = load_settings()
    with database_url(settings) as url:
        try:
            created = asyncio.run(_create_user(settings, url, username, role, password))
        except DomainError as error:
            raise fail(error.detail) from None
    typer.echo(f"created {role.value} account {created!r}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
