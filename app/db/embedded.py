"""The embedded PostgreSQL that lets a newcomer run the service with nothing installed.

Used only when `DATABASE_URL` is unset. The server lives under `CLEANWINDOW_DATA_DIR`,
listens on a Unix socket only (no TCP port, so nothing else on the network sees it), and
is stopped when the last process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DATABASE_NAME = "cleanwindow"

logger = logging.getLogger("cleanwindow.embedded")


def _socket_dir(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["host"][0]


@contextmanager
def embedded_postgres(data_dir: Path, database: str = DATABASE_NAME) -> Iterator[str]:
    """Start (or join) the embedded server and yield an asyncpg URL for `database`."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back
        # to a sensible folder; the warning would only confuse a newcomer.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: production images never start it

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "postgres"
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
