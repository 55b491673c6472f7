"""What an investigator does with the CLI, end to end against a running server."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx

from app.domain.staff import Role
from tests.client.helpers import Desk, LiveServer

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 600  # ~150 KiB: several 64 KiB chunks


def test_login_prints_only_the_token_and_the_token_works(desk: Desk) -> None:
    token = desk.triage.token
    assert token and len(token.split()) == 1
    me = httpx.get(
        f"{desk.server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status_code == 200 and me.json()["username"] == desk.triage.username
    # `keys register` took the public half: the server lists the key file's fingerprint.
    key_file = desk.triage.key_path.read_text()
    assert f"Fingerprint: {me.json()['public_key_fingerprint']}" in key_file


def test_list_prints_the_queue_as_a_table_and_as_json(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    table = server.ok("cases", "list", officer=triage)
    header, row = table.strip().splitlines()
    assert header.split()[:4] == ["ID", "STATE", "VER", "CHANNEL"]
    assert row.split()[:5] == [desk.case_id, "received", "1", "citizen", "bribery"]

    listed = json.loads(
        server.ok("cases", "list", "--json", "--state", "received", "--all", officer=triage)
    )
    assert [case["id"] for case in listed["items"]] == [desk.case_id]
    assert listed["next_cursor"] is None
    assert desk.marker not in json.dumps(listed)  # metadata only: the report stays sealed

    assert server.ok("cases", "list", "--state", "closed", officer=triage).strip() == "no cases"
    assert (
        json.loads(server.ok("cases", "list", "--json", "--drill", officer=triage))["items"] == []
    )


async def test_list_follows_the_pages_with_all(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    await server.report("second")
    first_page = server.cli("cases", "list", "--limit", "1", token=triage.token)
    assert first_page.exit_code == 0 and len(first_page.stdout.strip().splitlines()) == 2
    assert "--cursor" in first_page.stderr
    everything = json.loads(
        server.ok("cases", "list", "--limit", "1", "--all", "--json", officer=triage)
    )
    assert len(everything["items"]) == 2 and everything["next_cursor"] is None


def test_show_decrypts_the_report_locally(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    text = server.ok("cases", "show", desk.case_id, "--key", str(triage.key_path), officer=triage)
    assert desk.marker in text
    assert "건축 허가 대가로 금품 요구" in text
    assert "(anonymous)" in text

    document = json.loads(
        server.ok(
            "cases", "show", desk.case_id, "--key", str(triage.key_path), "--json", officer=triage
        )
    )
    assert document["id"] == desk.case_id and document["state"] == "received"
    assert desk.marker in document["report"]["content"]["details"]
    assert document["report"]["contact"] is None
    assert document["content_key_fingerprint"] in triage.key_path.read_text()
    assert not any(name.startswith("sealed") for name in document)


async def test_show_never_prints_a_reporters_control_characters(server: LiveServer) -> None:
    triage = await server.staff(Role.TRIAGE)
    await server.report(
        "x", content={"summary": "escape \x1b]0;pwned\x07 here", "details": "line one\nline two"}
    )
    case_id = json.loads(server.ok("cases", "list", "--json", officer=triage))["items"][0]["id"]
    text = server.ok("cases", "show", case_id, "--key", str(triage.key_path), officer=triage)
    assert "\x1b" not in text and "\x07" not in text
    assert "escape \\x1b]0;pwned\\x07 here" in text
    assert "line one\n" in text  # newlines in a report are kept


async def test_reply_is_sealed_locally_and_reaches_the_reporter(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    reply = "언제 받으셨나요? When did you receive it?"
    output = server.ok(
        "cases",
        "reply",
        desk.case_id,
        "--key",
        str(triage.key_path),
        officer=triage,
        input=reply + "\n",
    )
    assert output.startswith("sent message #1")

    headers = await server.reporter(desk.receipt)
    thread = httpx.get(f"{server.url}/api/v1/reporter/report", headers=headers).json()["messages"]
    assert [(message["author"], message["body"]) for message in thread] == [("staff", reply)]

    shown = json.loads(
        server.ok(
            "cases", "show", desk.case_id, "--key", str(triage.key_path), "--json", officer=triage
        )
    )
    assert [(m["author"], m["staff_username"], m["body"]) for m in shown["messages"]] == [
        ("staff", triage.username, reply)
    ]


def test_reply_refuses_an_empty_message(desk: Desk) -> None:
    result = desk.server.cli(
        "cases",
        "reply",
        desk.case_id,
        "--key",
        str(desk.triage.key_path),
        token=desk.triage.token,
        input="  \n",
    )
    assert result.exit_code == 2
    assert result.stderr == "cleanwindow: no message on standard input\n"


def test_transition_moves_the_case_and_history_shows_each_step(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    # Without --expected-version the current version is fetched first.
    moved = server.ok("cases", "transition", desk.case_id, "acknowledge", officer=triage)
    assert f"case {desk.case_id} is now acknowledged (version 2)" in moved
    assert "start_assessment" in moved

    result = json.loads(
        server.ok(
            "cases",
            "transition",
            desk.case_id,
            "start_assessment",
            "--expected-version",
            "2",
            "--reason",
            "looks admissible",
            "--json",
            officer=triage,
        )
    )
    assert (result["state"], result["version"]) == ("assessing", 3)

    stale = server.cli(
        "cases",
        "transition",
        desk.case_id,
        "dismiss",
        "--resolution",
        "duplicate",
        "--expected-version",
        "2",
        token=triage.token,
    )
    assert stale.exit_code == 1
    assert "version 3" in stale.stderr and len(stale.stderr.splitlines()) == 1

    not_allowed = server.cli(
        "cases", "transition", desk.case_id, "close_referral", token=triage.token
    )
    assert not_allowed.exit_code == 1
    assert (
        "accept" in not_allowed.stderr and "dismiss" in not_allowed.stderr
    )  # the detail names what is possible

    history = json.loads(server.ok("cases", "history", desk.case_id, "--json", officer=triage))[
        "items"
    ]
    assert [(step["action"], step["from_state"], step["to_state"]) for step in history] == [
        ("acknowledge", "received", "acknowledged"),
        ("start_assessment", "acknowledged", "assessing"),
    ]
    assert history[1]["reason"] == "looks admissible" and history[0]["actor"] == triage.username

    table = server.ok("cases", "history", desk.case_id, officer=triage)
    assert "start_assessment" in table and "reason: looks admissible" in table


async def test_grant_lets_the_assigned_investigator_read_the_case_with_their_own_key(
    desk: Desk,
) -> None:
    server, triage = desk.server, desk.triage
    investigator = await server.staff(
        Role.INVESTIGATOR
    )  # registered after the report: not sealed to them
    server.ok("cases", "transition", desk.case_id, "acknowledge", officer=triage)
    server.ok("cases", "transition", desk.case_id, "start_assessment", officer=triage)
    server.ok(
        "cases",
        "transition",
        desk.case_id,
        "accept",
        "--assignee",
        investigator.username,
        officer=triage,
    )

    before = server.cli(
        "cases", "show", desk.case_id, "--key", str(investigator.key_path), token=investigator.token
    )
    assert before.exit_code == 1 and "you hold no key for case" in before.stderr

    granted = server.ok(
        "cases",
        "grant",
        desk.case_id,
        "--to",
        investigator.username,
        "--key",
        str(triage.key_path),
        officer=triage,
    )
    assert investigator.username in granted
    investigator_fingerprint = (
        investigator.key_path.read_text().split("Fingerprint: ")[1].split()[0]
    )
    assert investigator_fingerprint in granted

    text = server.ok(
        "cases", "show", desk.case_id, "--key", str(investigator.key_path), officer=investigator
    )
    assert desk.marker in text
    listed = json.loads(
        server.ok("cases", "list", "--assignee", "me", "--json", officer=investigator)
    )
    assert [case["id"] for case in listed["items"]] == [desk.case_id]


async def test_download_decrypts_the_reporters_attachment_chunk_by_chunk(
    desk: Desk, tmp_path: Path
) -> None:
    server, triage = desk.server, desk.triage
    headers = await desk.server.reporter(desk.receipt)
    upload = httpx.post(
        f"{server.url}/api/v1/reporter/attachments",
        files={"file": ("영수증 invoice.pdf", PDF, "application/pdf")},
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    attachment_id = upload.json()["id"]

    shown = json.loads(
        server.ok(
            "cases", "show", desk.case_id, "--key", str(triage.key_path), "--json", officer=triage
        )
    )
    [listed] = shown["attachments"]
    assert (listed["id"], listed["filename"], listed["size_bytes"]) == (
        attachment_id,
        "영수증 invoice.pdf",
        len(PDF),
    )
    assert listed["chunk_count"] > 1

    out = tmp_path / "evidence.pdf"
    output = server.ok(
        "cases",
        "download",
        desk.case_id,
        attachment_id,
        "--key",
        str(triage.key_path),
        "--out",
        str(out),
        officer=triage,
    )
    assert out.read_bytes() == PDF
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert f"{len(PDF)} bytes" in output

    again = server.cli(
        "cases",
        "download",
        desk.case_id,
        attachment_id,
        "--key",
        str(triage.key_path),
        "--out",
        str(out),
        token=triage.token,
    )
    assert again.exit_code == 1
    assert again.stderr == f"cleanwindow: {out} already exists; refusing to overwrite it\n"
    assert out.read_bytes() == PDF
