"""How a failure of the `cleanwindow` command reaches the person who ran it: one line on
standard error and an exit code, never a traceback.

Kept apart from the HTTP client so that every command (the server-side ones in app.cli
too) can use it without importing httpx or pydantic; app.client never imports app.cli.
"""

from __future__ import annotations

import typer


class ClientError(Exception):
    """Something the person running the command must be told, in one line."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"cleanwindow: {message}", err=True)
    return typer.Exit(code)
