"""What administrators and auditors do with a running server: `users list`,
`users deactivate`, `users custodian`, `audit verify`, `audit list` and `stats`.

Like the `cases` commands they use CLEANWINDOW_URL and CLEANWINDOW_TOKEN, never the
database, and every failure (a role the server refuses, a server that is down) is one
line on standard error. `users create` and `users unlock` are the operator's commands on
the database itself (app.cli.server).
"""

from __future__ import annotations

import uuid

import typer

from app.client import render
from app.client.commands import JSON_OPTION, connect, fails_in_one_line, print_pages
from app.client.errors import ClientError
from app.domain.errors import InvalidInput
from app.domain.staff import normalize_username

CASE_READING_ROLES = ("triage", "supervisor", "investigator")

audit_cli = typer.Typer(
    help="The hash-chained audit log, through the running server (auditors, admins).",
    no_args_is_help=True,
)


@fails_in_one_line
def users_list(as_json: bool = JSON_OPTION) -> None:
    """Every staff account, by username (admin)."""
    with connect() as api:
        users = api.users()
    if as_json:
        typer.echo(render.as_json([user.model_dump(mode="json") for user in users]))
    else:
        typer.echo(render.users_table(users))


def wanted_username(username: str) -> str:
    """Checked before anything is sent: a name no account can have is a usage error."""
    try:
        return normalize_username(username)
    except InvalidInput as error:
        raise ClientError(error.detail, 2) from None


def account_named(api, wanted: str):
    """The account of this (normalized) username: the API acts on ids, the admin knows names."""
    account = next((user for user in api.users() if user.username == wanted), None)
    if account is None:
        raise ClientError(f"no staff account is named {wanted!r}")
    return account


@fails_in_one_line
def users_deactivate(
    username: str = typer.Argument(..., help="The account to deactivate."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Deactivate an account and revoke all its tokens at once (admin)."""
    wanted = wanted_username(username)
    with connect() as api:
        deactivated = api.deactivate(account_named(api, wanted).id)
    if as_json:
        typer.echo(render.as_json(deactivated.model_dump(mode="json")))
    else:
        typer.echo(f"deactivated {deactivated.username!r}; its tokens no longer work")


@fails_in_one_line
def users_email(
    username: str = typer.Argument(..., help="The account."),
    address: str | None = typer.Argument(None, help="The address for its notices; leave out with --clear."),
    clear: bool = typer.Option(False, "--clear", help="Send this account no more e-mail."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set where an account's notices go (new reports, deadlines; never content), or clear it (admin)."""
    if (address is None) == (not clear):
        raise ClientError("give an ADDRESS, or --clear", 2)
    wanted = wanted_username(username)
    with connect() as api:
        changed = api.set_email(account_named(api, wanted).id, None if clear else address)
    if as_json:
        typer.echo(render.as_json(changed.model_dump(mode="json")))
    elif changed.email:
        typer.echo(f"notices for {changed.username!r} go to {changed.email}")
    else:
        typer.echo(f"{changed.username!r} gets no e-mail")


@fails_in_one_line
def users_custodian(
    username: str = typer.Argument(..., help="The account to make an identity custodian."),
    off: bool = typer.Option(False, "--off", help="No longer a custodian (keys already sealed to it stay)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make an account an identity custodian, or no longer (admin; another admin's account only).
    Reports arriving from then on have their identity key sealed to its registered key too."""
    wanted = wanted_username(username)
    with connect() as api:
        changed = api.set_custodian(account_named(api, wanted).id, not off)
    if as_json:
        typer.echo(render.as_json(changed.model_dump(mode="json")))
    elif changed.is_identity_custodian:
        key = changed.public_key_fingerprint
        typer.echo(
            f"{changed.username!r} is an identity custodian; new reports' identities are sealed to "
            + (f"key {key}" if key else "its key once it registers one")
        )
        if changed.role in CASE_READING_ROLES:
            typer.echo(
                f"cleanwindow: warning: {changed.username!r} is a {changed.role} and may read cases: it will "
                "know who reported every case it handles, with no request; prefer custodians who handle "
                "no cases (an auditor, say)",
                err=True,
            )
    else:
        typer.echo(f"{changed.username!r} is no longer an identity custodian")


@audit_cli.command("verify")
@fails_in_one_line
def audit_verify(as_json: bool = JSON_OPTION) -> None:
    """Have the server recompute the whole chain; exit code 1, naming the first entry that
    does not match, when it does not hold."""
    with connect() as api:
        result = api.verify_audit()
    if as_json:
        typer.echo(render.as_json(result.model_dump(mode="json")))
    if not result.ok:
        raise ClientError(
            f"the audit chain does not hold: entry {result.first_bad} is the first that does "
            f"not match ({result.entries} entries checked)"
        )
    if not as_json:
        typer.echo(
            f"the audit chain holds: {result.entries} entries, head hash {result.head_hash} "
            "(keep it elsewhere to pin the chain)"
        )


@audit_cli.command("list")
@fails_in_one_line
def audit_list(
    case_id: uuid.UUID | None = typer.Option(None, "--case-id", help="Only entries about this case."),
    action: str | None = typer.Option(
        None,
        "--action",
        help="Only this action, e.g. case.transition, user.deactivated, auth.login_failed.",
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=500, help="Entries per page."),
    cursor: str | None = typer.Option(
        None, "--cursor", help="Continue from the `next_cursor` of an earlier page."
    ),
    every_page: bool = typer.Option(
        False, "--all", help="Follow the pages back to the first entry."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """The audit log, newest first: who did what, when, to which case."""
    filters = {
        name: str(value)
        for name, value in {"case_id": case_id, "action": action}.items()
        if value is not None
    }
    print_pages(
        lambda api, cursor: api.audit(filters, limit=limit, cursor=cursor),
        cursor=cursor,
        every_page=every_page,
        as_json=as_json,
        table=render.audit_table,
        what_follows="older entries",
    )


@fails_in_one_line
def stats(as_json: bool = JSON_OPTION) -> None:
    """Counts by state and category, and how the deadlines were kept, over real cases only
    (triage, supervisors, auditors, admins; through the running server)."""
    with connect() as api:
        figures = api.stats()
    typer.echo(render.as_json(figures.model_dump(mode="json")) if as_json else render.stats_text(figures))
