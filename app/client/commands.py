"""`cleanwindow login`, `keys register` and the `cases` commands.

The server and token come from CLEANWINDOW_URL (default http://127.0.0.1:8000) and
CLEANWINDOW_TOKEN; CLEANWINDOW_TIMEOUT (seconds, default 60) bounds each wait. Every
failure is one line on standard error with exit code 1 (2 for a missing token, an
unusable URL, timeout or key file); never a traceback.
"""

from __future__ import annotations

import functools
import getpass
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from app.client import render
from app.client.errors import ClientError, fail
from app.domain.intake import Channel
from app.domain.triage import Action, CaseState, Resolution

if TYPE_CHECKING:
    from app.client.api import ApiClient
    from app.client.models import CaseDetail, SealedMessage
    from app.client.sealing import OpenedCase

Command = TypeVar("Command", bound=Callable[..., Any])

cases_cli = typer.Typer(
    help="The case queue: list, read and answer cases, decrypted on this machine.",
    no_args_is_help=True,
)

KEY_OPTION = typer.Option(
    ..., "--key", help="Your private key file (from `cleanwindow keys generate`)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
CASE_ARGUMENT = typer.Argument(..., help="The case id (from `cleanwindow cases list`).")


def fails_in_one_line(command: Command) -> Command:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ClientError as error:
            raise fail(error.message, error.exit_code) from None

    return run  # type: ignore[return-value]


def connect(*, with_token: bool = True) -> ApiClient:
    """The server of CLEANWINDOW_URL. httpx and pydantic are imported here, when a command
    talks to the server, so that `--help` does not wait for them."""
    from app.client.api import ApiClient

    return ApiClient.from_environment(with_token=with_token)


def print_pages(
    fetch: Callable[[ApiClient, str | None], Any],
    *,
    cursor: str | None,
    every_page: bool,
    as_json: bool,
    table: Callable[[list[Any]], str],
    what_follows: str,
) -> None:
    """One page from `cursor` (or, with `every_page`, every page after it) as JSON or as a
    table; a table says on standard error how to ask for the next page."""
    items: list[Any] = []
    with connect() as api:
        while True:
            page = fetch(api, cursor)
            items += page.items
            cursor = page.next_cursor
            if not (every_page and cursor):
                break
    if as_json:
        typer.echo(
            render.as_json({"items": [item.model_dump(mode="json") for item in items], "next_cursor": cursor})
        )
        return
    typer.echo(table(items))
    if cursor:
        typer.echo(f"{what_follows} follow: add --cursor {cursor} (or --all)", err=True)


def print_model(model: Any, *, as_json: bool, text: Callable[[Any], str]) -> None:
    """A server's answer as JSON for scripts, or as text for a person."""
    typer.echo(render.as_json(model.model_dump(mode="json")) if as_json else text(model))


def read_stdin_text(what: str) -> str:
    if sys.stdin.isatty():
        typer.echo(f"Type the {what}; end it with Ctrl-D on a line of its own.", err=True)
    text = sys.stdin.read().strip()
    if not text:
        raise ClientError(f"no {what} on standard input", 2)
    return text


def opened(api: ApiClient, case_id: uuid.UUID, key_path: Path) -> OpenedCase:
    """Read the key file first: a bad file is reported before anything is fetched."""
    from app.client.sealing import open_case, read_private_key

    private_key = read_private_key(key_path)
    return open_case(api.case(case_id), private_key, key_path)


def released_identity(api: ApiClient, case: OpenedCase, key_path: Path) -> dict[str, Any]:
    from app.client.sealing import open_released_identity

    if not case.sealed.identified:
        raise ClientError(f"the reporter of case {case.id} gave no identity sealed apart; there is none to show")
    return open_released_identity(api.released_identity(case.id), case.private_key, key_path)


def case_document(case: OpenedCase) -> dict[str, Any]:
    """The case with everything sealed replaced by its plaintext: `cases show --json`."""
    sealed = case.sealed
    attachments = []
    for attachment in sealed.attachments:
        meta = case.attachment_meta(attachment)
        attachments.append(
            {
                **attachment.model_dump(mode="json", exclude={"sealed_meta"}),
                **{name: (meta or {}).get(name) for name in ("filename", "media_type", "size_bytes")},
                "readable": meta is not None,
            }
        )
    return {
        **sealed.model_dump(
            mode="json", exclude={"sealed_report", "content_key", "messages", "attachments"}
        ),
        "content_key_fingerprint": sealed.content_key.fingerprint if sealed.content_key else None,
        "report": case.report(),
        "messages": [message_document(case, message) for message in sealed.messages],
        "attachments": attachments,
    }


def purged_case_document(sealed: CaseDetail) -> dict[str, Any]:
    """`cases show --json` of a case retention purged: its metadata, and no content."""
    return {
        **sealed.model_dump(mode="json", exclude={"sealed_report", "content_key", "messages", "attachments"}),
        "content_key_fingerprint": None,
        "report": None,
        "messages": [],
        "attachments": [],
    }


def message_document(case: OpenedCase, message: SealedMessage) -> dict[str, Any]:
    opened = case.message(message)
    return {
        **message.model_dump(mode="json", exclude={"sealed_body"}),
        "body": opened.body if opened else None,
        "readable": opened is not None,
        "author_verified": opened.author_verified if opened else False,
    }


# --- accounts and keys ------------------------------------------------------------------


@fails_in_one_line
def login(username: str = typer.Argument(..., help="Your staff username.")) -> None:
    """Log in and print only the token (password from standard input):
    `export CLEANWINDOW_TOKEN=$(cleanwindow login alice)`."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise ClientError("no password on standard input", 2)
    with connect(with_token=False) as api:
        issued = api.login(username, password)
    typer.echo(issued.access_token)
    if issued.expires_at is not None:
        typer.echo(
            f"logged in as {username}; the token works until {render.timestamp(issued.expires_at)} UTC",
            err=True,
        )


@fails_in_one_line
def keys_register(key: Path = KEY_OPTION) -> None:
    """Register the public half of your key pair, so new reports are sealed to you too."""
    from app.client.sealing import read_private_key

    private_key = read_private_key(key)
    with connect() as api:
        registered = api.register_public_key(private_key.public_key)
    typer.echo(f"registered your public key, fingerprint {registered.fingerprint}")


# --- cases ------------------------------------------------------------------------------


@cases_cli.command("list")
@fails_in_one_line
def cases_list(
    state: CaseState | None = typer.Option(None, "--state", help="Only cases in this state."),
    category: str | None = typer.Option(None, "--category", help="Only this category code."),
    channel: Channel | None = typer.Option(
        None, "--channel", help="Only reports from this channel."
    ),
    overdue: bool = typer.Option(False, "--overdue", help="Only cases past a deadline."),
    assignee: str | None = typer.Option(
        None, "--assignee", help="Only cases assigned to this username (`me` for yours)."
    ),
    drill: bool | None = typer.Option(
        None, "--drill/--no-drill", help="Only drill cases, or only real ones (default: both)."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=200, help="Cases per page."),
    cursor: str | None = typer.Option(
        None, "--cursor", help="Continue from the `next_cursor` of an earlier page."
    ),
    every_page: bool = typer.Option(
        False, "--all", help="Follow the pages to the end of the queue."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """The queue, oldest first."""
    filters = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in {
            "state": state,
            "category": category,
            "channel": channel,
            "assignee": assignee,
            "overdue": True if overdue else None,
            "drill": drill,
        }.items()
        if value is not None
    }
    print_pages(
        lambda api, cursor: api.cases(filters, limit=limit, cursor=cursor),
        cursor=cursor,
        every_page=every_page,
        as_json=as_json,
        table=render.case_table,
        what_follows="more cases",
    )


@cases_cli.command("show")
@fails_in_one_line
def cases_show(
    case_id: uuid.UUID = CASE_ARGUMENT,
    key: Path = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    identity: bool = typer.Option(
        False,
        "--identity",
        help="Also open the reporter's identity, once a custodian released it to you (audited).",
    ),
) -> None:
    """Fetch the sealed case and decrypt it here: the report, the messages and the
    attachments' names; with --identity, the identity released to you. Of a case whose
    content retention deleted, what remains: its metadata."""
    from app.client.sealing import open_case, read_private_key

    private_key = read_private_key(key)  # a bad key file is reported before anything is fetched
    with connect() as api:
        sealed = api.case(case_id)
        if sealed.purged_on is not None:
            document = purged_case_document(sealed)
            typer.echo(render.as_json(document) if as_json else render.case_text(document))
            return
        case = open_case(sealed, private_key, key)
        document = case_document(case)
        if identity:
            document["identity"] = released_identity(api, case, key)
    typer.echo(render.as_json(document) if as_json else render.case_text(document))
    for message in document["messages"]:
        if not message["readable"]:
            typer.echo(
                f"cleanwindow: warning: message #{message['seq']} of case {case_id} does not open: "
                f"{render.UNREADABLE_REASON}",
                err=True,
            )
    for attachment in document["attachments"]:
        if not attachment["readable"]:
            typer.echo(
                f"cleanwindow: warning: attachment {attachment['id']} of case {case_id} does not open "
                "(its sealed description is damaged); the rest of the case is shown",
                err=True,
            )


@cases_cli.command("identity-request")
@fails_in_one_line
def cases_identity_request(
    case_id: uuid.UUID = CASE_ARGUMENT,
    reason: str = typer.Option(
        ...,
        "--reason",
        help="Why you need to know who the reporter is. The reporter reads it word for word; "
        "write no detail of the report into it.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ask to learn who the reporter is. The reporter is asked for consent in the mailbox;
    a supervisor may instead record a legal ground; a custodian then releases it to you."""
    with connect() as api:
        request = api.request_identity(case_id, reason)
    print_model(request, as_json=as_json, text=render.identity_request_text)


@cases_cli.command("reply")
@fails_in_one_line
def cases_reply(case_id: uuid.UUID = CASE_ARGUMENT, key: Path = KEY_OPTION) -> None:
    """Send the reporter a message, read from standard input and sealed here."""
    body = read_stdin_text("message")
    with connect() as api:
        case = opened(api, case_id, key)
        # The id is chosen here because it is bound into the ciphertext's associated data.
        message_id = uuid.uuid4()
        sent = api.send_message(case.id, message_id, case.seal_message(message_id, body))
    typer.echo(f"sent message #{sent.seq} to the reporter of case {case.id}")


@cases_cli.command("transition")
@fails_in_one_line
def cases_transition(
    case_id: uuid.UUID = CASE_ARGUMENT,
    action: Action = typer.Argument(..., help="What to do with the case."),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (required by reopen; kept in the history)."
    ),
    resolution: Resolution | None = typer.Option(
        None, "--resolution", help="For dismiss and conclude."
    ),
    assignee: str | None = typer.Option(
        None, "--assignee", help="The investigator's username, for accept."
    ),
    expected_version: int | None = typer.Option(
        None,
        "--expected-version",
        help="The version you last read. Omitted: the case's current version is fetched first, "
        "so only a change made in that instant is caught.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move the case through the triage state machine."""
    with connect() as api:
        if expected_version is None:
            expected_version = api.case(case_id).version
        request = {"action": action.value, "expected_version": expected_version}
        request |= {
            name: str(value)
            for name, value in (
                ("reason", reason),
                ("resolution", resolution),
                ("assignee", assignee),
            )
            if value is not None
        }
        result = api.transition(case_id, request)
    if as_json:
        typer.echo(render.as_json(result.model_dump(mode="json")))
        return
    typer.echo(f"case {result.id} is now {result.state} (version {result.version})")
    if result.allowed_actions:
        typer.echo(f"you may next: {', '.join(result.allowed_actions)}")


@cases_cli.command("history")
@fails_in_one_line
def cases_history(case_id: uuid.UUID = CASE_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Every transition of the case: who, when, from, to, why."""
    with connect() as api:
        history = api.history(case_id)
    print_model(history, as_json=as_json, text=lambda page: render.history_table(page.items))


@cases_cli.command("grant")
@fails_in_one_line
def cases_grant(
    case_id: uuid.UUID = CASE_ARGUMENT,
    to: str = typer.Option(
        ..., "--to", help="The colleague's username; they need a registered key."
    ),
    key: Path = KEY_OPTION,
) -> None:
    """Give a colleague the case's content key, sealed here to their public key."""
    with connect() as api:
        case = opened(api, case_id, key)
        public_key, sealed_key = case.content_key_sealed_to(api.public_key_of(to))
        grant = api.grant(case.id, to, public_key.fingerprint, sealed_key)
    typer.echo(
        f"granted case {case.id} to {grant.grantee}, sealed to key {public_key.fingerprint}; "
        "they can compare it with the fingerprint `cleanwindow keys register` showed them"
    )


@cases_cli.command("download")
@fails_in_one_line
def cases_download(
    case_id: uuid.UUID = CASE_ARGUMENT,
    attachment_id: uuid.UUID = typer.Argument(
        ..., help="The attachment id (from `cleanwindow cases show`)."
    ),
    key: Path = KEY_OPTION,
    out: Path = typer.Option(
        ..., "--out", help="Where to write the decrypted file (mode 0600; never overwritten)."
    ),
) -> None:
    """Download an attachment and decrypt it here, chunk by chunk."""
    from app.client.sealing import new_private_file, sealed_frames

    with connect() as api:
        case = opened(api, case_id, key)
        attachment = next(
            (item for item in case.sealed.attachments if item.id == attachment_id), None
        )
        if attachment is None:
            raise ClientError(f"case {case.id} has no attachment {attachment_id}")
        meta = case.attachment_meta(attachment)
        if meta is None:
            raise ClientError(
                f"attachment {attachment.id} of case {case.id} does not open (damaged); nothing written"
            )
        with new_private_file(out) as file, api.attachment(case.id, attachment.id) as stream:
            written = case.write_attachment(
                attachment, sealed_frames(stream, attachment.chunk_bytes), file
            )
    typer.echo(f"wrote {out}: {render.printable(str(meta.get('filename')))}, {written} bytes")
