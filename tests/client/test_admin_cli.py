"""`users list`, `users deactivate`, `audit verify`, `audit list` and `stats`: what admins
and auditors did with curl, now through the CLI against a really running server."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.domain.staff import Role
from tests.client.helpers import Desk, LiveServer, free_port, run_process
from tests.client.test_failures import assert_one_line_failure


def api_get(server: LiveServer, path: str, token: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/v1{path}", params=params, headers={"Authorization": f"Bearer {token}"}
    )


def table_rows(output: str) -> list[list[str]]:
    """The rows of a table the CLI printed, split on the runs of spaces between columns."""
    return [line.split() for line in output.splitlines()[1:]]


async def test_users_list_shows_every_account_to_an_admin(server: LiveServer) -> None:
    triage = await server.staff(Role.TRIAGE)
    auditor = await server.staff(Role.AUDITOR, with_key=False)

    listed = server.cli("users", "list", token=server.admin_token)
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["USERNAME", "ROLE", "ACTIVE", "KEY", "CREATED", "(UTC)", "ID"]
    rows = {row[0]: row for row in table_rows(listed.stdout)}
    assert set(rows) == {"first-admin", triage.username, auditor.username}
    fingerprint = api_get(server, "/users/me", triage.token).json()["public_key_fingerprint"]
    assert rows[triage.username][1:4] == ["triage", "yes", fingerprint]
    assert rows[auditor.username][1:4] == ["auditor", "yes", "-"]

    as_json = server.cli("users", "list", "--json", token=server.admin_token)
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == api_get(server, "/users", server.admin_token).json()


async def test_users_deactivate_finds_the_account_by_name_and_its_tokens_stop_working(
    server: LiveServer,
) -> None:
    investigator = await server.staff(Role.INVESTIGATOR, with_key=False)
    assert api_get(server, "/users/me", investigator.token).status_code == 200

    # Names are matched as the server stores them: trimmed and in lower case.
    result = server.cli("users", "deactivate", f" {investigator.username.upper()}", token=server.admin_token)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"deactivated '{investigator.username}'; its tokens no longer work\n"

    assert api_get(server, "/users/me", investigator.token).status_code == 401
    accounts = json.loads(server.cli("users", "list", "--json", token=server.admin_token).stdout)
    assert next(a for a in accounts if a["username"] == investigator.username)["is_active"] is False
    entries = json.loads(
        server.cli("audit", "list", "--action", "user.deactivated", "--json", token=server.admin_token).stdout
    )["items"]
    assert [(e["actor"], e["details"]) for e in entries] == [("first-admin", {"username": investigator.username})]

    again = server.cli("users", "deactivate", investigator.username, "--json", token=server.admin_token)
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["is_active"] is False


def test_users_deactivate_refusals_are_one_line(server: LiveServer) -> None:
    unknown = server.cli("users", "deactivate", "nobody-here", token=server.admin_token)
    assert_one_line_failure(unknown, "no staff account is named 'nobody-here'")
    malformed = server.cli("users", "deactivate", "x", token=server.admin_token)
    assert_one_line_failure(malformed, "username is 3 to 64", exit_code=2)
    own = server.cli("users", "deactivate", "first-admin", token=server.admin_token)
    assert_one_line_failure(own, "cannot deactivate their own account")


async def test_users_custodian_flags_another_account_warns_about_case_readers_and_is_audited(server: LiveServer) -> None:
    auditor = await server.staff(Role.AUDITOR)
    triage = await server.staff(Role.TRIAGE, with_key=False)
    coordinator = await server.staff(Role.DRILL_COORDINATOR, with_key=False)

    flagged = server.cli("users", "custodian", auditor.username, token=server.admin_token)
    assert flagged.exit_code == 0, flagged.stderr
    fingerprint = api_get(server, "/users/me", auditor.token).json()["public_key_fingerprint"]
    assert flagged.stdout == (
        f"'{auditor.username}' is an identity custodian; new reports' identities are sealed to key {fingerprint}\n"
    )
    assert flagged.stderr == ""  # an auditor reads no case: nothing to warn about
    rows = {row[0]: row for row in table_rows(server.cli("users", "list", token=server.admin_token).stdout)}
    assert rows[auditor.username][1] == "auditor+custodian"

    case_reader = server.cli("users", "custodian", triage.username, "--json", token=server.admin_token)
    assert case_reader.exit_code == 0 and json.loads(case_reader.stdout)["is_identity_custodian"] is True
    plain = server.cli("users", "custodian", triage.username, token=server.admin_token)
    assert "its key once it registers one" in plain.stdout
    assert "will know who reported every case it handles" in plain.stderr

    off = server.cli("users", "custodian", triage.username, "--off", token=server.admin_token)
    assert off.stdout == f"'{triage.username}' is no longer an identity custodian\n"
    assert_one_line_failure(server.cli("users", "custodian", "first-admin", token=server.admin_token), "cannot make themselves")
    assert_one_line_failure(
        server.cli("users", "custodian", coordinator.username, token=server.admin_token), "cannot be an identity custodian"
    )
    entries = json.loads(server.cli("audit", "list", "--json", token=server.admin_token).stdout)["items"]
    changes = [(e["action"], e["details"]["username"]) for e in reversed(entries) if e["action"].startswith("user.custodian")]
    assert changes == [
        ("user.custodian_set", auditor.username),
        ("user.custodian_set", triage.username),
        ("user.custodian_unset", triage.username),
    ]


async def test_a_role_the_server_refuses_gets_its_reason_in_one_line(server: LiveServer) -> None:
    triage = await server.staff(Role.TRIAGE, with_key=False)
    investigator = await server.staff(Role.INVESTIGATOR, with_key=False)
    for args, officer, reason in (
        (["users", "list"], triage, "This needs one of the roles: admin."),
        (["users", "deactivate", investigator.username], triage, "This needs one of the roles: admin."),
        (["audit", "list"], triage, "This needs one of the roles: admin, auditor."),
        (["audit", "verify"], investigator, "This needs one of the roles: admin, auditor."),
        (["stats"], investigator, "Statistics are open to triage, supervisors, auditors and administrators."),
    ):
        result = server.cli(*args, token=officer.token)
        assert assert_one_line_failure(result) == f"cleanwindow: {reason}", args
    # The refused deactivation changed nothing.
    assert api_get(server, "/users/me", investigator.token).status_code == 200


async def test_audit_verify_holds_then_exits_1_naming_the_entry_a_superuser_altered(
    server: LiveServer,
) -> None:
    auditor = await server.staff(Role.AUDITOR, with_key=False)
    holds = server.cli("audit", "verify", token=auditor.token)
    assert holds.exit_code == 0, holds.stderr
    verified = api_get(server, "/audit/verify", auditor.token).json()
    assert holds.stdout.startswith(
        f"the audit chain holds: {verified['entries']} entries, head hash {verified['head_hash']}"
    )

    created = json.loads(
        server.cli("audit", "list", "--action", "user.created", "--json", token=auditor.token).stdout
    )["items"][0]
    # As a superuser with the trigger off, the way someone with the database's keys but not
    # the chain's would rewrite history.
    engine = create_async_engine(server.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
            await connection.execute(
                text("UPDATE audit_log SET actor_username = 'someone-else' WHERE seq = :seq"),
                {"seq": created["seq"]},
            )
    finally:
        await engine.dispose()

    broken = server.cli("audit", "verify", token=auditor.token)
    assert_one_line_failure(
        broken, f"the audit chain does not hold: entry {created['seq']} is the first that does not match"
    )
    as_json = server.cli("audit", "verify", "--json", token=auditor.token)
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) | {"head_hash": None} == {
        "ok": False, "entries": verified["entries"], "first_bad": created["seq"], "head_hash": None
    }
    assert as_json.stderr == broken.stderr


async def test_audit_list_filters_pages_and_matches_the_api(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    server.ok("cases", "transition", desk.case_id, "acknowledge", officer=triage)
    auditor = await server.staff(Role.AUDITOR, with_key=False)

    everything = json.loads(server.cli("audit", "list", "--all", "--limit", "2", "--json", token=auditor.token).stdout)
    assert everything == {"items": api_get(server, "/audit", auditor.token, limit="500").json()["items"], "next_cursor": None}
    seqs = [entry["seq"] for entry in everything["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) > 3

    about_case = json.loads(
        server.cli("audit", "list", "--case-id", desk.case_id, "--json", token=auditor.token).stdout
    )["items"]
    assert {entry["case_id"] for entry in about_case} == {desk.case_id}
    assert "case.transition" in {entry["action"] for entry in about_case}
    created = json.loads(
        server.cli("audit", "list", "--action", "user.created", "--json", token=auditor.token).stdout
    )["items"]
    assert sorted(entry["details"]["username"] for entry in created) == sorted([triage.username, auditor.username])

    first = server.cli("audit", "list", "--limit", "1", token=auditor.token)
    assert first.exit_code == 0, first.stderr
    header, row = first.stdout.splitlines()
    assert header.split() == ["SEQ", "WHEN", "(UTC)", "WHO", "ACTION", "CASE", "DETAILS"]
    assert row.split()[0] == str(seqs[0])
    assert first.stderr == f"older entries follow: add --cursor {seqs[0]} (or --all)\n"
    second = server.cli("audit", "list", "--limit", "1", "--cursor", str(seqs[0]), token=auditor.token)
    assert second.stdout.splitlines()[1].split()[0] == str(seqs[1])
    transition = next(e for e in about_case if e["action"] == "case.transition")
    shown = server.cli("audit", "list", "--case-id", desk.case_id, "--action", "case.transition", token=auditor.token)
    assert f"{triage.username} (triage)" in shown.stdout and "action: acknowledge" in shown.stdout
    assert shown.stdout.splitlines()[1].split()[0] == str(transition["seq"])


async def test_stats_shows_what_the_api_counts(desk: Desk) -> None:
    server = desk.server
    auditor = await server.staff(Role.AUDITOR, with_key=False)
    expected = api_get(server, "/stats", auditor.token).json()
    assert expected["total"] == 1

    as_json = server.cli("stats", "--json", token=auditor.token)
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected

    shown = server.cli("stats", token=auditor.token)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"real cases as of {expected['as_of']} (drills are never counted): 1"
    rows = [line.split() for line in lines]
    assert ["received", "1"] in rows and ["bribery", "1"] in rows
    assert ["DEADLINE", "MET", "LATE", "MISSED", "PENDING"] in rows
    ack = expected["acknowledgement"]
    assert ["acknowledgement", *(str(ack[k]) for k in ("met", "late", "missed", "pending"))] in rows


@pytest.mark.parametrize(
    "args",
    [["users", "list"], ["users", "deactivate", "someone"], ["audit", "verify"], ["audit", "list"], ["stats"]],
)
def test_a_server_that_is_down_is_one_line_in_a_real_process(args: list[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # bound a moment ago and released: nothing listens
    result = run_process(*args, url=closed, token="some-token")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"cleanwindow: cannot reach the server at {closed}")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_no_token_says_how_to_get_one(server: LiveServer) -> None:
    for args in (["users", "list"], ["audit", "verify"], ["stats"]):
        assert_one_line_failure(server.cli(*args, token=None), "no token", "cleanwindow login", exit_code=2)


async def test_users_email_sets_and_clears_where_an_accounts_notices_go(server: LiveServer) -> None:
    triage = await server.staff(Role.TRIAGE, with_key=False)

    set_ = server.cli("users", "email", triage.username, "Night.Desk@Agency.EXAMPLE", token=server.admin_token)
    assert set_.exit_code == 0, set_.stderr
    assert set_.stdout == f"notices for '{triage.username}' go to Night.Desk@agency.example\n"
    assert api_get(server, "/users/me", triage.token).json()["email"] == "Night.Desk@agency.example"

    cleared = server.cli("users", "email", triage.username, "--clear", "--json", token=server.admin_token)
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["email"] is None

    usage = server.cli("users", "email", triage.username, token=server.admin_token)
    assert usage.exit_code == 2 and "give an ADDRESS, or --clear" in usage.stderr
    assert_one_line_failure(
        server.cli("users", "email", triage.username, "not an address", token=server.admin_token), "looks like"
    )
    assert_one_line_failure(server.cli("users", "email", "nobody-here", "a@agency.example", token=server.admin_token), "no staff account")
    assert api_get(server, "/users/me", triage.token).json()["email"] is None
