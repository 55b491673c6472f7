"""`cleanwindow identity ...`: the custodians' and supervisors' side of confidential identity.

A custodian's private key opens the identity key sealed to them; `identity release`
re-seals it, on this machine, to the requester's registered public key. The identity
itself is never printed here: the client only checks that the key opens it, so that a
custodian cannot hand over a key that does not work.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import typer

from app.client import render
from app.client.commands import JSON_OPTION, KEY_OPTION, connect, fails_in_one_line, print_model
from app.client.errors import ClientError

identity_cli = typer.Typer(
    help="Requests to learn a reporter's identity: weigh them (supervisors), release them (custodians).",
    no_args_is_help=True,
)

REQUEST_ARGUMENT = typer.Argument(..., help="The identity request's id (from `cleanwindow identity pending`).")


def act(request_id: uuid.UUID, action: str, as_json: bool, body: dict[str, str] | None = None) -> None:
    """One step on a request (`POST /identity-requests/{id}/{action}`), and the request after it."""
    with connect() as api:
        request = api.act_on_identity_request(request_id, action, body)
    print_model(request, as_json=as_json, text=render.identity_request_text)


@identity_cli.command("pending")
@fails_in_one_line
def identity_pending(as_json: bool = JSON_OPTION) -> None:
    """Requests waiting for you: to release (custodians) and to weigh on a legal ground (supervisors)."""
    with connect() as api:
        work = api.pending_identity_work()
    print_model(work, as_json=as_json, text=render.identity_pending_text)


@identity_cli.command("show")
@fails_in_one_line
def identity_show(request_id: uuid.UUID = REQUEST_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """One request: who asked, why, the reporter's answer, any legal ground, its release."""
    with connect() as api:
        request = api.identity_request(request_id)
    print_model(request, as_json=as_json, text=render.identity_request_text)


@identity_cli.command("release")
@fails_in_one_line
def identity_release(request_id: uuid.UUID = REQUEST_ARGUMENT, key: Path = KEY_OPTION) -> None:
    """Open the identity key with your custodian key and re-seal it, here, to the requester."""
    from app.client.sealing import read_private_key
    from app.domain import crypto

    private_key = read_private_key(key)
    with connect() as api:
        # The server says why when this request is not for this custodian to release now.
        work = api.release_material(request_id)
        case_id = work.request.case_id
        if work.custodian_key.fingerprint != private_key.public_key.fingerprint:
            raise ClientError(
                f"the identity of case {case_id} is sealed to your key {work.custodian_key.fingerprint}, "
                f"but {key} holds key {private_key.public_key.fingerprint}"
            )
        try:
            identity_key = crypto.open_identity_key(work.custodian_key.sealed_key, private_key, case_id)
            crypto.open_identity(identity_key, work.sealed_identity, case_id)
        except crypto.DecryptionFailed:
            raise ClientError(f"the identity of case {case_id} does not open with {key}; nothing was released") from None
        requester = crypto.PublicKey.from_text(work.requester_public_key)
        if requester.fingerprint != work.requester_fingerprint:
            raise ClientError("the server's answer names one key and sends another; nothing was released")
        released = api.release_identity(
            request_id, requester.fingerprint, crypto.seal_identity_key(identity_key, requester, case_id)
        )
    typer.echo(
        f"released the identity of case {case_id} to {work.requester} ({released.basis}), sealed to key "
        f"{requester.fingerprint}; they can compare it with the fingerprint `cleanwindow keys register` showed them"
    )


@identity_cli.command("approve")
@fails_in_one_line
def identity_approve(
    request_id: uuid.UUID = REQUEST_ARGUMENT,
    legal_ground: str = typer.Option(..., "--legal-ground", help="The legal obligation that requires disclosure."),
    withhold_notice_because: str | None = typer.Option(
        None,
        "--withhold-notice-because",
        help="Only if telling the reporter now would jeopardise the investigation: why.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """As a supervisor, record that the law requires disclosure without the reporter's consent."""
    body = {"legal_ground": legal_ground}
    if withhold_notice_because is not None:
        body["withhold_notice_because"] = withhold_notice_because
    act(request_id, "approve", as_json, body)


@identity_cli.command("unopenable")
@fails_in_one_line
def identity_unopenable(request_id: uuid.UUID = REQUEST_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """As the requester: what was released to you does not open with your key; a custodian
    may then release it again (the custodian who released it is named in the audit chain)."""
    act(request_id, "unopenable", as_json)


@identity_cli.command("withdraw")
@fails_in_one_line
def identity_withdraw(request_id: uuid.UUID = REQUEST_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Drop a request that is not yet released (the requester, or a supervisor)."""
    act(request_id, "withdraw", as_json)


@identity_cli.command("lift-withholding")
@fails_in_one_line
def identity_lift_withholding(request_id: uuid.UUID = REQUEST_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """As a supervisor, let the reporter be told of a legal decision that was kept from them."""
    act(request_id, "lift-withholding", as_json)
