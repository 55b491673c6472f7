"""The audit chain: every security event lands in it, the database refuses to change it,
and verification names the first entry that was changed behind the service's back."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.audit.models import AuditWindowCount
from app.domain.audit import AuditRecord, ChainVerifier, GENESIS_HASH, StoredEntry, entry_hash
from app.domain.staff import Role
from tests.cases.helpers import insert_case, register_key, transition
from tests.conftest import STRONG_PASSWORD

# --- the chain itself (pure) -------------------------------------------------------------


def build_chain(count: int) -> list[StoredEntry]:
    entries, previous = [], GENESIS_HASH
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    for seq in range(1, count + 1):
        record = AuditRecord(
            occurred_at=start + timedelta(seconds=seq),
            action="case.read",
            actor_id=uuid.uuid4(),
            actor_username=f"officer{seq}",
            actor_role="triage",
            case_id=uuid.uuid4(),
            details={"n": seq, "note": "읽음"},
        )
        digest = entry_hash(previous, seq, record)
        entries.append(StoredEntry(seq, record, previous, digest))
        previous = digest
    return entries


def verify(entries: list[StoredEntry], head_seq: int | None = None, head_hash: bytes | None = None):
    verifier = ChainVerifier()
    verifier.feed(entries[:3])
    verifier.feed(entries[3:])  # in batches, as the service feeds it
    last = entries[-1] if entries else None
    return verifier.finish(
        head_seq if head_seq is not None else (last.seq if last else 0),
        head_hash if head_hash is not None else (last.hash if last else GENESIS_HASH),
    )


def test_an_intact_chain_verifies() -> None:
    result = verify(build_chain(8))
    assert (result.ok, result.entries, result.first_bad) == (True, 8, None)
    assert verify([]).ok


@pytest.mark.parametrize(
    "change",
    [
        lambda r: dataclasses.replace(r, actor_username="someone-else"),
        lambda r: dataclasses.replace(r, details={"n": 99, "note": "읽음"}),
        lambda r: dataclasses.replace(r, occurred_at=r.occurred_at + timedelta(microseconds=1)),
        lambda r: dataclasses.replace(r, case_id=None),
        lambda r: dataclasses.replace(r, action="case.transition"),
    ],
)
def test_a_changed_field_is_named(change) -> None:
    chain = build_chain(8)
    chain[4] = dataclasses.replace(chain[4], record=change(chain[4].record))
    result = verify(chain)
    assert (result.ok, result.first_bad) == (False, 5)


def test_a_rehashed_entry_still_breaks_the_link_to_the_next() -> None:
    chain = build_chain(8)
    forged = dataclasses.replace(chain[2].record, actor_username="mallory")
    chain[2] = dataclasses.replace(chain[2], record=forged, hash=entry_hash(chain[2].prev_hash, 3, forged))
    assert verify(chain, head_hash=chain[-1].hash).first_bad == 4


def test_removed_reordered_and_cut_off_entries_are_named() -> None:
    chain = build_chain(8)
    assert verify(chain[:3] + chain[4:]).first_bad == 4
    assert verify(chain[:2] + [chain[3], chain[2]] + chain[4:]).first_bad == 3
    # The last two cut off: no gap, but the head still points at entry 8.
    assert verify(chain[:6], head_seq=8, head_hash=chain[-1].hash).first_bad == 7


# --- through the service and the database -----------------------------------------------


async def audit_actions(client, auditor_headers, **filters) -> list[dict]:
    response = await client.get("/api/v1/audit", params={"limit": 500, **filters}, headers=auditor_headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_every_security_event_is_chained(client, staff, sessionmaker) -> None:
    admin = await staff.create(Role.ADMIN)
    admin_headers = {"Authorization": f"Bearer {await staff.token_for(admin)}"}
    auditor = await staff.headers_for(Role.AUDITOR)

    # user change, key registration, failed logins (known and unknown name), logout
    created = await client.post(
        "/api/v1/users",
        json={"username": "tina.triage", "role": "triage", "password": STRONG_PASSWORD},
        headers=admin_headers,
    )
    assert created.status_code == 201
    tina_login = await client.post("/api/v1/auth/token", data={"username": "tina.triage", "password": STRONG_PASSWORD})
    tina = {"Authorization": f"Bearer {tina_login.json()['access_token']}"}
    tina_key = await register_key(client, tina)
    await client.post("/api/v1/auth/token", data={"username": "tina.triage", "password": "wrong password entirely"})
    typed_password = "hunter2-typed-into-the-username-field"
    await client.post("/api/v1/auth/token", data={"username": typed_password, "password": "whatever at all"})

    # case read, transition, grant, message
    case = await insert_case(sessionmaker)
    from app.cases.models import CaseKey
    from app.domain import crypto

    content_key = crypto.new_content_key()
    async with sessionmaker() as session:
        session.add(
            CaseKey(
                case_id=case.id,
                recipient_kind="staff",
                staff_user_id=(await client.get("/api/v1/users/me", headers=tina)).json()["id"],
                recipient_fingerprint=tina_key.public_key.fingerprint,
                sealed_key=crypto.seal_content_key(content_key, tina_key.public_key, case.id),
            )
        )
        await session.commit()
    assert (await client.get(f"/api/v1/cases/{case.id}", headers=tina)).status_code == 200
    assert (await transition(client, tina, case.id, "acknowledge", 1)).status_code == 200
    supervisor_user = await staff.create(Role.SUPERVISOR)
    supervisor = {"Authorization": f"Bearer {await staff.token_for(supervisor_user)}"}
    supervisor_key = await register_key(client, supervisor)
    granted = await client.post(
        f"/api/v1/cases/{case.id}/grants",
        json={
            "grantee": supervisor_user.username,
            "fingerprint": supervisor_key.public_key.fingerprint,
            "sealed_key": crypto.b64url_encode(crypto.seal_content_key(content_key, supervisor_key.public_key, case.id)),
        },
        headers=tina,
    )
    assert granted.status_code == 201, granted.text
    message_id = uuid.uuid4()
    sent = await client.post(
        f"/api/v1/cases/{case.id}/messages",
        json={
            "id": str(message_id),
            "sealed_body": crypto.b64url_encode(
                crypto.seal_message(content_key, "Thank you", case_id=case.id, message_id=message_id, author="staff")
            ),
            "seal_format": crypto.MESSAGE_SEAL_FORMAT,
        },
        headers=tina,
    )
    assert sent.status_code == 201, sent.text
    assert (await client.delete("/api/v1/auth/token", headers=tina)).status_code == 204
    tina_id = created.json()["id"]
    assert (await client.post(f"/api/v1/users/{tina_id}/unlock", headers=admin_headers)).status_code == 200
    assert (await client.post(f"/api/v1/users/{tina_id}/deactivate", headers=admin_headers)).status_code == 200
    await client.post("/api/v1/auth/token", data={"username": "tina.triage", "password": STRONG_PASSWORD})

    entries = await audit_actions(client, auditor)
    by_action: dict[str, list[dict]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
    expected = {
        "user.created",
        "auth.login",
        "auth.login_failed",
        "key.registered",
        "case.read",
        "case.transition",
        "case.grant",
        "case.message",
        "auth.logout",
        "user.unlocked",
        "user.deactivated",
    }
    assert expected <= set(by_action)
    failures = {entry["details"]["reason"]: entry for entry in by_action["auth.login_failed"]}
    assert failures["wrong_password"]["actor"] == "tina.triage"
    assert failures["inactive"]["actor"] == "tina.triage"
    # An unknown name is counted for its hour, not logged on its own (see below).
    assert "unknown_account" not in failures
    assert await counted_unknown_user_failures(sessionmaker) == 1
    assert typed_password not in str(entries)  # a mistyped password never reaches the log
    transition_entry = by_action["case.transition"][0]
    assert transition_entry["case_id"] == str(case.id)
    assert transition_entry["details"]["from_state"] == "received"
    assert transition_entry["details"]["to_state"] == "acknowledged"
    assert by_action["case.grant"][0]["details"]["grantee"] == supervisor_user.username
    assert by_action["key.registered"][-1]["details"] == {"fingerprint": tina_key.public_key.fingerprint, "replaced": None}
    assert by_action["user.deactivated"][0]["actor"] == admin.username
    assert by_action["user.deactivated"][0]["details"] == {"username": "tina.triage"}
    # newest first, each linked to the one before it
    for newer, older in zip(entries, entries[1:]):
        assert newer["seq"] == older["seq"] + 1
        assert newer["prev_hash"] == older["hash"]
    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert verified["ok"] is True and verified["first_bad"] is None
    assert verified["entries"] == entries[0]["seq"]


async def test_refusals_of_a_locked_account_do_not_fill_the_log(client, staff) -> None:
    auditor = await staff.headers_for(Role.AUDITOR)
    target = await staff.create(Role.TRIAGE)
    statuses = []
    for _ in range(12):
        response = await client.post("/api/v1/auth/token", data={"username": target.username, "password": "not the password at all"})
        statuses.append(response.status_code)
    assert statuses.count(429) >= 6  # locked after five failures
    failed = await audit_actions(client, auditor, action="auth.login_failed")
    assert len([entry for entry in failed if entry["actor"] == target.username]) == statuses.count(401)


async def counted_unknown_user_failures(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(
            select(func.coalesce(func.sum(AuditWindowCount.count), 0)).where(
                AuditWindowCount.action == "auth.login_failed_unknown_user"
            )
        )


async def end_the_counting_hour(db_connection) -> None:
    """What the clock does to the open window an hour later."""
    await db_connection.execute(text("UPDATE audit_window_counts SET window_start = window_start - interval '1 hour'"))


async def test_failed_logins_for_invented_names_are_counted_per_hour_not_logged_one_by_one(
    app, client, staff, sessionmaker, db_connection
) -> None:
    auditor = await staff.headers_for(Role.AUDITOR)
    before = (await client.get("/api/v1/audit/verify", headers=auditor)).json()["entries"]
    typed = [f"typed-secret-{n:02d}-x" for n in range(50)]
    for name in typed:
        response = await client.post("/api/v1/auth/token", data={"username": name, "password": "whatever at all"})
        assert response.status_code == 401

    during = await audit_actions(client, auditor)
    added = [entry for entry in during if entry["seq"] > before]
    assert [entry for entry in added if entry["action"] == "auth.login_failed"] == []
    aggregates = [entry for entry in added if entry["action"] == "auth.login_failed_unknown_user"]
    assert len(aggregates) <= 1  # one only if the hour turned during the test
    written = sum(entry["details"]["count"] for entry in aggregates)
    assert written + await counted_unknown_user_failures(sessionmaker) == 50

    # The hour ends; the first such failure of the next hour writes the whole hour.
    await end_the_counting_hour(db_connection)
    response = await client.post("/api/v1/auth/token", data={"username": "typed-secret-late", "password": "whatever"})
    assert response.status_code == 401
    after = await audit_actions(client, auditor)
    aggregates = [entry for entry in after if entry["action"] == "auth.login_failed_unknown_user"]
    assert sum(entry["details"]["count"] for entry in aggregates) == 50
    assert len(aggregates) <= 2
    hour = aggregates[0]
    assert hour["actor"] is None and hour["case_id"] is None
    assert set(hour["details"]) == {"count", "window_start", "window_end"}
    start, end = (datetime.fromisoformat(hour["details"][key]) for key in ("window_start", "window_end"))
    assert end - start == timedelta(hours=1) and start.minute == start.second == 0
    assert await counted_unknown_user_failures(sessionmaker) == 1  # the late one, in its own hour
    assert not any(name in str(after) for name in [*typed, "typed-secret-late"])

    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert verified["ok"] is True and verified["entries"] == after[0]["seq"]


async def test_counts_of_an_ended_hour_are_written_when_the_log_is_read(client, staff, sessionmaker, db_connection) -> None:
    auditor = await staff.headers_for(Role.AUDITOR)
    for n in range(3):
        await client.post("/api/v1/auth/token", data={"username": f"nobody-{n}", "password": "whatever at all"})
    assert [e for e in await audit_actions(client, auditor) if e["action"] == "auth.login_failed_unknown_user"] == []
    await end_the_counting_hour(db_connection)
    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert verified["ok"] is True
    [hour] = await audit_actions(client, auditor, action="auth.login_failed_unknown_user")
    assert hour["details"]["count"] == 3 and hour["seq"] == verified["entries"]
    assert await counted_unknown_user_failures(sessionmaker) == 0


async def test_parallel_failures_across_replicas_write_an_ended_hour_exactly_once(live, password_hashing) -> None:
    """Real commits on separate connections: many failures racing to close the same
    ended hour write it once, with its whole count, and lose none of the new hour's."""
    import asyncio

    from tests.conftest import StaffFactory

    factory = StaffFactory(live.sessionmaker, live.client, password_hashing)
    auditor = await factory.headers_for(Role.AUDITOR)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with live.sessionmaker() as session:
        session.add(AuditWindowCount(action="auth.login_failed_unknown_user", window_start=hour_ago.replace(minute=0, second=0, microsecond=0), count=7))
        await session.commit()

    responses = await asyncio.gather(
        *(live.client.post("/api/v1/auth/token", data={"username": f"racer-{n}", "password": "whatever at all"}) for n in range(12))
    )
    refused = [response for response in responses if response.status_code == 401]
    # A login that found no hashing slot in time is a 503 that counts nowhere.
    assert all(r.json()["type"].endswith("busy") for r in responses if r.status_code != 401)
    assert len(refused) >= 2
    entries = await audit_actions(live.client, auditor, action="auth.login_failed_unknown_user")
    assert [entry["details"]["count"] for entry in entries] == [7]
    assert await counted_unknown_user_failures(live.sessionmaker) == len(refused)
    assert (await live.client.get("/api/v1/audit/verify", headers=auditor)).json()["ok"] is True


async def test_reading_the_log_writes_the_hours_that_ended_with_no_event_since(client, staff, sessionmaker) -> None:
    """No failure came after the hour ended, so nothing else wrote it: the auditor's read
    does, once, before the page; a read with no ended hour writes nothing."""
    auditor = await staff.headers_for(Role.AUDITOR)
    quiet = await audit_actions(client, auditor)
    assert await audit_actions(client, auditor) == quiet  # nothing ended: nothing written
    hour = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    async with sessionmaker() as session:
        session.add(AuditWindowCount(action="auth.login_failed_unknown_user", window_start=hour, count=7))
        await session.commit()
    first = [e for e in await audit_actions(client, auditor) if e["action"] == "auth.login_failed_unknown_user"]
    assert [(e["details"]["count"], e["details"]["window_start"]) for e in first] == [(7, hour.isoformat())]
    again = [e for e in await audit_actions(client, auditor) if e["action"] == "auth.login_failed_unknown_user"]
    assert again == first  # written once
    assert await counted_unknown_user_failures(sessionmaker) == 0
    assert (await client.get("/api/v1/audit/verify", headers=auditor)).json()["ok"] is True


async def test_failed_logins_on_real_accounts_are_still_logged_one_by_one(client, staff) -> None:
    auditor = await staff.headers_for(Role.AUDITOR)
    target = await staff.create(Role.TRIAGE)
    for _ in range(3):
        response = await client.post("/api/v1/auth/token", data={"username": target.username, "password": "not the password at all"})
        assert response.status_code == 401
    failed = await audit_actions(client, auditor, action="auth.login_failed")
    mine = [entry for entry in failed if entry["actor"] == target.username]
    assert len(mine) == 3 and {entry["details"]["reason"] for entry in mine} == {"wrong_password"}


async def counted_failures(sessionmaker, action: str) -> int:
    async with sessionmaker() as session:
        return await session.scalar(
            select(func.coalesce(func.sum(AuditWindowCount.count), 0)).where(AuditWindowCount.action == action)
        )


async def test_failed_logins_on_a_deactivated_account_are_named_once_then_counted_per_hour(
    client, staff, sessionmaker, db_connection
) -> None:
    """A former colleague's username is no secret: an entry per refused attempt would let
    anyone grow the append-only log as fast as logins are answered."""
    admin = await staff.headers_for(Role.ADMIN)
    auditor = await staff.headers_for(Role.AUDITOR)
    former = await staff.create(Role.TRIAGE)
    assert (await client.post(f"/api/v1/users/{former.id}/deactivate", headers=admin)).status_code == 200
    before = (await client.get("/api/v1/audit/verify", headers=auditor)).json()["entries"]
    for n in range(50):
        password = STRONG_PASSWORD if n % 2 else "not the password at all"
        response = await client.post("/api/v1/auth/token", data={"username": former.username, "password": password})
        assert response.status_code == 401

    added = [entry for entry in await audit_actions(client, auditor) if entry["seq"] > before]
    # The first refusal since deactivation is named: someone tried the former account.
    [named] = [entry for entry in added if entry["action"] == "auth.login_failed"]
    assert named["actor"] == former.username and named["details"] == {"reason": "inactive"}
    aggregates = [entry for entry in added if entry["action"] == "auth.login_failed_inactive_account"]
    assert len(aggregates) <= 1  # one only if the hour turned during the test
    assert len(added) == 1 + len(aggregates)
    written = sum(entry["details"]["count"] for entry in aggregates)
    assert written + await counted_failures(sessionmaker, "auth.login_failed_inactive_account") == 49

    await end_the_counting_hour(db_connection)
    response = await client.post("/api/v1/auth/token", data={"username": former.username, "password": "again"})
    assert response.status_code == 401
    after = [entry for entry in await audit_actions(client, auditor) if entry["seq"] > before]
    aggregates = [entry for entry in after if entry["action"] == "auth.login_failed_inactive_account"]
    assert sum(entry["details"]["count"] for entry in aggregates) == 49
    assert aggregates[0]["actor"] is None
    assert set(aggregates[0]["details"]) == {"count", "window_start", "window_end"}
    assert len([entry for entry in after if entry["action"] == "auth.login_failed"]) == 1
    assert await counted_failures(sessionmaker, "auth.login_failed_inactive_account") == 1

    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert verified["ok"] is True and verified["entries"] == after[0]["seq"]


async def test_wrong_passwords_on_an_active_account_add_one_entry_per_lock_at_most(
    app, client, staff, db_connection
) -> None:
    """Every failure that checked a password is logged, but the throttle bounds them: the
    free attempts, then one per lock, and refusals while locked are not logged."""
    auditor = await staff.headers_for(Role.AUDITOR)
    target = await staff.create(Role.TRIAGE)
    free_attempts = app.state.context.settings.auth.throttle_policy.free_attempts

    async def hammer(times: int) -> None:
        for _ in range(times):
            response = await client.post(
                "/api/v1/auth/token", data={"username": target.username, "password": "not the password at all"}
            )
            assert response.status_code in (401, 429)

    async def logged() -> int:
        failed = await audit_actions(client, auditor, action="auth.login_failed")
        return len([entry for entry in failed if entry["actor"] == target.username])

    await hammer(40)
    assert await logged() == free_attempts
    for lock in range(1, 4):  # each lock runs out; the next failure locks the account again
        await db_connection.execute(
            text("UPDATE staff_users SET locked_until = now() - interval '1 second' WHERE username = :username"),
            {"username": target.username},
        )
        await hammer(20)
        assert await logged() == free_attempts + lock
    assert (await client.get("/api/v1/audit/verify", headers=auditor)).json()["ok"] is True


async def test_the_audit_log_pages_and_filters(client, staff, sessionmaker) -> None:
    triage = await staff.headers_for(Role.TRIAGE)
    auditor = await staff.headers_for(Role.AUDITOR)
    case = await insert_case(sessionmaker)
    for _ in range(3):
        assert (await client.get(f"/api/v1/cases/{case.id}", headers=triage)).status_code == 200
    first = await client.get("/api/v1/audit", params={"limit": 2, "case_id": str(case.id)}, headers=auditor)
    assert [e["action"] for e in first.json()["items"]] == ["case.read", "case.read"]
    second = await client.get(
        "/api/v1/audit", params={"limit": 2, "case_id": str(case.id), "cursor": first.json()["next_cursor"]}, headers=auditor
    )
    assert len(second.json()["items"]) == 1 and second.json()["next_cursor"] is None
    bad = await client.get("/api/v1/audit", params={"cursor": "abc"}, headers=auditor)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor_username = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
    ],
)
async def test_the_database_refuses_to_change_the_log(client, staff, db_connection, statement) -> None:
    await staff.headers_for(Role.TRIAGE)  # a login: at least one entry
    savepoint = await db_connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        await db_connection.execute(text(statement))
    await savepoint.rollback()


async def test_verify_names_the_entry_a_superuser_altered(client, staff, sessionmaker, db_connection) -> None:
    triage = await staff.headers_for(Role.TRIAGE)
    auditor = await staff.headers_for(Role.AUDITOR)
    case = await insert_case(sessionmaker)
    for version in (1, 2):
        action = "acknowledge" if version == 1 else "start_assessment"
        assert (await transition(client, triage, case.id, action, version)).status_code == 200
    entries = await audit_actions(client, auditor, case_id=str(case.id))
    target = next(e for e in entries if e["details"].get("action") == "start_assessment")
    assert (await client.get("/api/v1/audit/verify", headers=auditor)).json()["ok"] is True

    # As a superuser: switch the trigger off for this transaction and rewrite history,
    # as someone with the database's keys but not the chain's would.
    await db_connection.execute(text("SET LOCAL session_replication_role = replica"))
    await db_connection.execute(
        text("UPDATE audit_log SET actor_username = 'someone-else' WHERE seq = :seq"), {"seq": target["seq"]}
    )
    await db_connection.execute(text("SET LOCAL session_replication_role = origin"))

    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert verified["ok"] is False
    assert verified["first_bad"] == target["seq"]


async def test_the_head_cannot_be_rewound(client, staff, db_connection) -> None:
    await staff.headers_for(Role.TRIAGE)
    for statement in (
        "UPDATE audit_head SET seq = seq - 1",
        "UPDATE audit_head SET seq = seq + 2",
        "DELETE FROM audit_head",
        "TRUNCATE audit_head",
    ):
        savepoint = await db_connection.begin_nested()
        with pytest.raises(DBAPIError, match="audit_head only advances|append-only"):
            await db_connection.execute(text(statement))
        await savepoint.rollback()


async def test_verify_names_entries_written_beyond_the_head(client, staff, db_connection) -> None:
    auditor = await staff.headers_for(Role.AUDITOR)
    head_seq = (await audit_actions(client, auditor))[0]["seq"]
    # Written around the service (the head not moved), as a rewound head would leave them.
    await db_connection.execute(
        text(
            "INSERT INTO audit_log (seq, occurred_at, action, details, prev_hash, hash) "
            "VALUES (:seq, now(), 'case.read', '{}', :zeros, :zeros)"
        ),
        {"seq": head_seq + 1, "zeros": bytes(32)},
    )
    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert (verified["ok"], verified["first_bad"]) == (False, head_seq + 1)


def test_audit_details_refuse_values_that_would_not_hash_the_same_after_a_round_trip() -> None:
    record = AuditRecord(occurred_at=datetime(2026, 11, 22, tzinfo=UTC), action="x", details={"ratio": 0.1})
    with pytest.raises(TypeError, match="float"):
        entry_hash(GENESIS_HASH, 1, record)


async def test_verify_notices_entries_cut_off_the_end(client, staff, db_connection) -> None:
    auditor = await staff.headers_for(Role.AUDITOR)
    await staff.headers_for(Role.TRIAGE)
    last = (await audit_actions(client, auditor))[0]["seq"]
    await db_connection.execute(text("SET LOCAL session_replication_role = replica"))
    await db_connection.execute(text("DELETE FROM audit_log WHERE seq = :seq"), {"seq": last})
    await db_connection.execute(text("SET LOCAL session_replication_role = origin"))
    # The verify request itself appends nothing, so the head still names the removed entry.
    verified = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert (verified["ok"], verified["first_bad"]) == (False, last)
