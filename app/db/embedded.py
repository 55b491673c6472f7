"""The embedded PostgreSQL that lets a newcomer run the service with nothing installed.

Used only when `DATABASE_URL` is unset. The server lives under `CLEANWINDOW_DATA_DIR`,
listens on a Unix socket only (no TCP port, so nothing else on the network sees it), and
is stopped when the last process using it exits. Run as root, pgserver runs PostgreSQL
as a system user `pgserver` it creates, and opens read and traverse permissions on the
data folder's parents so that user can reach it.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DATABASE_NAME = "cleanwindow"
HANDLES_FILE = ".handle_pids.json"  # pgserver's list of processes using a server

logger = logging.getLogger("cleanwindow.embedded")


class EmbeddedPostgresError(RuntimeError):
    pass


def _socket_dir(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["host"][0]


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops the server when the last process on its list exits, but a process
    that was killed never leaves the list, and the server would then run forever."""
    import psutil

    handles = pgdata / HANDLES_FILE
    if not handles.exists():
        return
    pids = json.loads(handles.read_text() or "[]")
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


@contextmanager
def embedded_postgres(data_dir: Path, database: str = DATABASE_NAME) -> Iterator[str]:
    """Start (or join) the embedded server and yield an asyncpg URL for `database`."""
    pgdata = data_dir.expanduser().resolve() / "postgres"
    if any(character.isspace() for character in str(pgdata)):
        raise EmbeddedPostgresError(
            f"CLEANWINDOW_DATA_DIR must not contain spaces (the embedded PostgreSQL "
            f"cannot use {str(pgdata)!r}); choose another folder"
        )
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back
        # to a sensible folder; the warning would only confuse a newcomer.
        warnings.simplefilter("ignore")
        try:
            import pgserver  # imported here: production images never start it
        except ImportError:
            raise EmbeddedPostgresError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed: set "
                "DATABASE_URL, or install it with `pip install 'cleanwindow[embedded]'`"
            ) from None

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with pgserver.PostgresServer._lock:  # the lock pgserver itself takes around its list
        _forget_dead_handles(pgdata)
    logger.info("starting embedded PostgreSQL", extra={"pgdata": str(pgdata)})
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{database}";')
        yield f"postgresql+asyncpg://postgres@/{database}?host={_socket_dir(server.get_uri())}"
    finally:
        server.cleanup()
        logger.info("embedded PostgreSQL released", extra={"pgdata": str(pgdata)})
