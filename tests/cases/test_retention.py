"""Retention (`retention.purge`): on mixed data, exactly the content the policy names goes,
every other row stays byte for byte, the audit chain records each purge and still
verifies, no sealed byte of a purged case is left anywhere in the database, two runs at
once purge each case once, and what staff, the reporter and the CLI meet afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.audit.models import AuditEntry
from app.audit.service import AuditLog
from app.cases.attachment_store import AttachmentStore
from app.cases.models import AttachmentChunk, Case, CaseAttachment, CaseKey, CaseMessage, CaseTransition, DeadlineNotice
from app.cases.retention import due_case_ids, purge_case, purge_expired_cases
from app.context import AppContext
from app.db.session import SessionMaker, build_sessionmaker
from app.domain import crypto
from app.domain.attachments import AttachmentLimits
from app.domain.audit import AuditAction
from app.domain.clock import organisation_date, utc_now
from app.domain.errors import NotFound
from app.domain.kdf import TEST_KEY_DERIVATION
from app.domain.staff import Role
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from app.jobs.catalogue import BY_NAME
from app.jobs.runner import run_job
from app.notifications.models import NotificationEvent
from app.settings import Settings
from app.staff.models import StaffUser
from tests.cases.helpers import case_row, insert_campaign, transition
from tests.conftest import FixedClock
from tests.identity.conftest import office  # noqa: F401  (staff with keys, an identified report)
from tests.identity.helpers import Office
from tests.intake.helpers import reporter_headers

PROBLEM = "urn:cleanwindow:problem:"
# Rows retention deletes, as `snapshot` names them (table.column linking them to the case).
DELETED = {
    "case_keys.case_id",
    "case_messages.case_id",
    "case_attachments.case_id",
    "case_attachments.staging_case_id",
    "attachment_chunks",
    "case_identities.case_id",
    "identity_keys.case_id",
    "identity_requests.case_id",
}
# The case row's columns a purge empties (and `purged_on`, which it sets).
EMPTIED = {"sealed_report", "receipt_tag", "reporter_public_key", "pow_digest", "idempotency_digest", "sealed_replay"}


def context_for(settings: Settings, sessionmaker: SessionMaker, clock: FixedClock | None = None) -> AppContext:
    return AppContext.build(
        settings, sessionmaker, key_derivation=TEST_KEY_DERIVATION, **({"clock": clock} if clock else {})
    )


# --- what the database holds of a case ---------------------------------------------------


async def linked_columns(session) -> list[tuple[str, str]]:
    """Every (table, column) that ties a row to a case: found in the schema, so a table
    added later is checked too."""
    rows = await session.execute(
        text(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "AND c.column_name IN ('case_id', 'staging_case_id') ORDER BY 1, 2"
        )
    )
    return [(row[0], row[1]) for row in rows]


async def snapshot(sessionmaker: SessionMaker, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, list[str]]]:
    """Every row of every table that belongs to each case, whole, as JSON text (bytea
    shown in hex): compared before and after, byte for byte."""
    held: dict[uuid.UUID, dict[str, list[str]]] = {case_id: defaultdict(list) for case_id in case_ids}
    async with sessionmaker() as session:
        queries = [("cases", "SELECT c.id, row_to_json(c)::text FROM cases c WHERE c.id = ANY(:ids)")]
        queries += [
            (f"{table}.{column}", f'SELECT t."{column}", row_to_json(t)::text FROM "{table}" t WHERE t."{column}" = ANY(:ids)')
            for table, column in await linked_columns(session)
        ]
        queries.append(
            (
                "attachment_chunks",
                "SELECT coalesce(a.case_id, a.staging_case_id), row_to_json(ch)::text FROM attachment_chunks ch "
                "JOIN case_attachments a ON a.id = ch.attachment_id "
                "WHERE coalesce(a.case_id, a.staging_case_id) = ANY(:ids)",
            )
        )
        for name, query in queries:
            for case_id, row in await session.execute(text(query), {"ids": case_ids}):
                held[case_id][name].append(row)
    return {case_id: {name: sorted(rows) for name, rows in tables.items()} for case_id, tables in held.items()}


async def sealed_values(sessionmaker: SessionMaker, case_id: uuid.UUID) -> list[bytes]:
    """Every bytea value the database holds for the case, in any table but the audit
    chain's own hashes (which name no content and stay)."""
    found: list[bytes] = []
    async with sessionmaker() as session:
        for name, rows in (await snapshot(sessionmaker, [case_id]))[case_id].items():
            table = name.split(".")[0]
            if table == "audit_log":
                continue
            columns = await bytea_columns(session, table)
            for row in rows:
                values = json.loads(row)
                found += [bytes.fromhex(values[column][2:]) for column in columns if values.get(column)]
    return [value for value in found if value]  # an empty value is "found" in every column


async def bytea_columns(session, table: str | None = None) -> list[str] | list[tuple[str, str]]:
    query = (
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type = 'bytea' ORDER BY 1, 2"
    )
    rows = [(row[0], row[1]) for row in await session.execute(text(query))]
    return [column for name, column in rows if name == table] if table else rows


# --- mixed data, written straight to the database ----------------------------------------


async def staff_member(session, role: Role) -> StaffUser:
    user = StaffUser(username=f"{role.value}-{uuid.uuid4().hex[:8]}", role=role.value, password_hash="unused")
    session.add(user)
    await session.flush()
    return user


async def case_with_everything(
    sessionmaker: SessionMaker, now: datetime, today: date, **overrides: Any
) -> uuid.UUID:
    """A case with a row in every table retention touches or must leave alone: keys,
    messages both ways, a published attachment and one still staging (with chunks), a
    sealed identity, its keys and a request for it, a transition, a deadline notice, an
    outbox event and an audit entry; each sealed value its own random bytes."""
    if overrides.get("is_drill"):
        overrides["drill_campaign_id"] = (await insert_campaign(sessionmaker, blind=True)).id
    closed_on = overrides.get("closed_on")
    received_on = (closed_on or today) - timedelta(days=30)
    case = case_row(received_on, reporter_public_key=os.urandom(32), **overrides)
    async with sessionmaker() as session:
        triage, custodian = await staff_member(session, Role.TRIAGE), await staff_member(session, Role.AUDITOR)
        session.add(case)
        await session.flush()
        published, staging = uuid.uuid4(), uuid.uuid4()
        # Settled (withdrawn): a request still open holds the case (its own test below).
        request = IdentityRequest(
            id=uuid.uuid4(),
            case_id=case.id,
            requester_id=triage.id,
            requested_at=now,
            reason="to interview them",
            status="withdrawn",
            withdrawn_by_id=triage.id,
            withdrawn_at=now,
        )
        session.add_all(
            [
                CaseKey(case_id=case.id, recipient_kind="reporter", recipient_fingerprint="r" * 39, sealed_key=os.urandom(80)),
                CaseKey(case_id=case.id, recipient_kind="recovery", recipient_fingerprint="v" * 39, sealed_key=os.urandom(80)),
                CaseKey(
                    case_id=case.id,
                    recipient_kind="staff",
                    staff_user_id=triage.id,
                    recipient_fingerprint="s" * 39,
                    sealed_key=os.urandom(80),
                ),
                CaseMessage(case_id=case.id, seq=1, author="reporter", sent_on=received_on, sealed_body=os.urandom(90), seal_format=2),
                CaseMessage(
                    case_id=case.id,
                    seq=2,
                    author="staff",
                    staff_user_id=triage.id,
                    sent_on=received_on,
                    sent_at=now,
                    sealed_body=os.urandom(90),
                    seal_format=2,
                ),
                CaseAttachment(
                    id=published,
                    case_id=case.id,
                    author="reporter",
                    uploaded_on=received_on,
                    stored_bytes=256,
                    chunk_bytes=128,
                    chunk_count=2,
                    sealed_meta=os.urandom(70),
                ),
                CaseAttachment(
                    id=staging,
                    staging_case_id=case.id,
                    staged_on=today,
                    author="reporter",
                    uploaded_on=today,
                    stored_bytes=128,
                    chunk_bytes=128,
                    chunk_count=1,
                    sealed_meta=b"",
                ),
                CaseIdentity(case_id=case.id, sealed_identity=os.urandom(120)),
                IdentityKey(case_id=case.id, holder_kind="reporter", recipient_fingerprint="r" * 39, sealed_key=os.urandom(80)),
                IdentityKey(
                    case_id=case.id,
                    holder_kind="custodian",
                    staff_user_id=custodian.id,
                    recipient_fingerprint="c" * 39,
                    sealed_key=os.urandom(80),
                ),
                request,
                CaseTransition(
                    case_id=case.id,
                    version=case.version + 1,
                    action="acknowledge",
                    from_state="received",
                    to_state="acknowledged",
                    actor_id=triage.id,
                    occurred_at=now - timedelta(days=900),
                    reason="seen",
                ),
                DeadlineNotice(case_id=case.id, deadline="acknowledge", due_on=received_on, notice="reminder", sent_on=received_on),
                NotificationEvent(
                    kind="case.deadline_missed", case_id=case.id, audience=["triage"], details={"deadline": "acknowledge"}, not_before=now
                ),
            ]
        )
        await session.flush()
        session.add_all(
            [
                AttachmentChunk(attachment_id=published, index=0, sealed=os.urandom(128)),
                AttachmentChunk(attachment_id=published, index=1, sealed=os.urandom(128)),
                AttachmentChunk(attachment_id=staging, index=0, sealed=os.urandom(128)),
            ]
        )
        await AuditLog(session).record(AuditAction.CASE_READ, now, triage, case_id=case.id, content_key=True)
        await session.commit()
    return case.id


def closed(days_ago: int, resolution: str | None, today: date, **extra: Any) -> dict[str, Any]:
    return {"state": "closed", "resolution": resolution, "closed_on": today - timedelta(days=days_ago), **extra}


async def mixed_cases(sessionmaker: SessionMaker, now: datetime, today: date) -> tuple[dict[str, uuid.UUID], set[str]]:
    """Cases of every outcome on both sides of their period (default policy: 60, 60, 365
    and 1825 days), open and reopened cases, and a drill case; and the names of those due."""
    replay = {"pow_digest": os.urandom(32), "idempotency_digest": os.urandom(32), "sealed_replay": os.urandom(200)}
    layout = {
        # Due: the last day kept is behind them.
        "not_admissible_on_the_day": closed(60, "not_admissible", today, **replay),
        "duplicate_long_ago": closed(200, "duplicate", today),
        "unsubstantiated_due": closed(61, "unsubstantiated", today),
        "referred_due": closed(365, None, today),
        "substantiated_due": closed(1825, "substantiated", today),
        # Kept: closed just inside their period, or kept longer by their outcome.
        "not_admissible_just_inside": closed(59, "not_admissible", today),
        "unsubstantiated_inside": closed(30, "unsubstantiated", today),
        "referred_just_inside": closed(364, None, today),
        "substantiated_for_years": closed(1824, "substantiated", today),
        # Not closed: open for years, or reopened after a closing long past.
        "open_for_years": {"state": "investigating", "received_on": today - timedelta(days=3000)},
        "reopened": {"state": "assessing", "received_on": today - timedelta(days=800)},
        # A (blind) drill case goes when its campaign closes, never by retention.
        "drill": closed(500, "not_admissible", today, is_drill=True),
    }
    ids = {}
    for name, overrides in layout.items():
        received_on = overrides.pop("received_on", None)
        ids[name] = await case_with_everything(sessionmaker, now, today, **overrides)
        if received_on is not None:
            async with sessionmaker() as session:
                await session.execute(update(Case).where(Case.id == ids[name]).values(received_on=received_on))
                await session.commit()
    due = {"not_admissible_on_the_day", "duplicate_long_ago", "unsubstantiated_due", "referred_due", "substantiated_due"}
    return ids, due


def assert_purged_as_the_policy_says(before: dict[str, list[str]], after: dict[str, list[str]], today: date) -> dict:
    """The purged case: its sealed rows gone, its row emptied of what it was sent, and
    every other row (history, notices, events, earlier audit entries) as it was; returns
    its purge's audit entry."""
    for name in DELETED:
        assert before.get(name), f"the test case had no {name}: this check would prove nothing"
        assert not after.get(name), name
    (row_before,), (row_after,) = before["cases"], after["cases"]
    old, new = json.loads(row_before), json.loads(row_after)
    assert {column: new[column] for column in EMPTIED} == dict.fromkeys(EMPTIED)
    assert new["purged_on"] == today.isoformat()
    assert {k: v for k, v in new.items() if k not in EMPTIED | {"purged_on"}} == {
        k: v for k, v in old.items() if k not in EMPTIED | {"purged_on"}
    }
    audit_before, audit_after = before["audit_log.case_id"], after["audit_log.case_id"]
    added = [json.loads(entry) for entry in audit_after if entry not in audit_before]
    assert len(audit_after) == len(audit_before) + 1 and len(added) == 1
    for name in set(before) | set(after):
        if name not in DELETED | {"cases", "audit_log.case_id"}:
            assert after.get(name) == before.get(name), name
    return added[0]


async def test_only_what_the_policy_names_disappears_and_the_rest_stays_byte_for_byte(
    settings: Settings, sessionmaker: SessionMaker
) -> None:
    now = utc_now()
    today = organisation_date(now, settings.zone)
    ids, due = await mixed_cases(sessionmaker, now, today)
    before = await snapshot(sessionmaker, list(ids.values()))
    context = context_for(settings, sessionmaker, FixedClock(now))

    result = await purge_expired_cases(context)

    assert result == {"purged": len(due), "skipped": 0, "more": False, "held": 0}
    after = await snapshot(sessionmaker, list(ids.values()))
    for name, case_id in ids.items():
        if name not in due:
            assert after[case_id] == before[case_id], name
            continue
        entry = assert_purged_as_the_policy_says(before[case_id], after[case_id], today)
        resolution = json.loads(before[case_id]["cases"][0])["resolution"]
        outcome = {"not_admissible": "dismissed", "duplicate": "dismissed", None: "referred"}.get(resolution, resolution)
        assert entry["action"] == "case.purged" and entry["actor_id"] is None
        assert entry["details"] == {
            "outcome": outcome,
            "retention_days": {"dismissed": 60, "unsubstantiated": 60, "referred": 365, "substantiated": 1825}[outcome],
            "closed_on": json.loads(before[case_id]["cases"][0])["closed_on"],
            "messages": 2,
            "attachments": 2,
            "attachment_chunks": 3,
            "content_keys": 3,
            "identities": 1,
            "identity_keys": 2,
            "identity_requests": 1,
        }, name
    async with sessionmaker() as session:
        assert (await AuditLog(session).verify()).ok

    # Again: nothing is left to do, and nothing changes.
    assert await purge_expired_cases(context) == {"purged": 0, "skipped": 0, "more": False, "held": 0}
    assert await snapshot(sessionmaker, list(ids.values())) == after


async def test_a_run_takes_a_batch_and_the_next_run_the_rest(settings: Settings, sessionmaker: SessionMaker) -> None:
    now = utc_now()
    today = organisation_date(now, settings.zone)
    for days in (70, 80, 90):
        await case_with_everything(sessionmaker, now, today, **closed(days, "duplicate", today))
    context = context_for(settings, sessionmaker, FixedClock(now))
    assert await purge_expired_cases(context, batch=2) == {"purged": 2, "skipped": 0, "more": True, "held": 0}
    assert await purge_expired_cases(context, batch=2) == {"purged": 1, "skipped": 0, "more": False, "held": 0}


async def test_no_sealed_byte_of_a_purged_case_is_left_in_any_table(settings: Settings, sessionmaker: SessionMaker) -> None:
    now = utc_now()
    today = organisation_date(now, settings.zone)
    kept = await case_with_everything(sessionmaker, now, today, **closed(10, "duplicate", today))
    purged = await case_with_everything(
        sessionmaker,
        now,
        today,
        **closed(61, "not_admissible", today, pow_digest=os.urandom(32), idempotency_digest=os.urandom(32), sealed_replay=os.urandom(64)),
    )
    values = await sealed_values(sessionmaker, purged)
    assert len(values) >= 15  # the report, keys, bodies, chunks, identity, receipt tag, replay...
    kept_values = await sealed_values(sessionmaker, kept)

    assert (await purge_expired_cases(context_for(settings, sessionmaker, FixedClock(now))))["purged"] == 1

    assert await where_found(sessionmaker, values) == []
    assert len(await where_found(sessionmaker, kept_values)) == len(kept_values)  # the search does find bytes


async def where_found(sessionmaker: SessionMaker, values: list[bytes]) -> list[str]:
    """Which of `values` any bytea column of any table holds, whole or inside a longer
    value: what a dump of the database would show."""
    found = []
    async with sessionmaker() as session:
        for table, column in await bytea_columns(session):
            for value in values:
                query = f'SELECT count(*) FROM "{table}" WHERE position(:value IN "{column}") > 0'
                if await session.scalar(text(query), {"value": value}):
                    found.append(f"{table}.{column}")
    return found


# --- two workers at once, a case someone holds -------------------------------------------


@pytest.fixture
async def two_workers(fresh_database_url: str, settings: Settings):
    """Two contexts on one database, each with an engine of its own, like two workers."""
    engines = [create_async_engine(fresh_database_url) for _ in range(2)]
    clock = FixedClock(utc_now())
    yield [context_for(settings, build_sessionmaker(engine), clock) for engine in engines]
    for engine in engines:
        await engine.dispose()


async def purge_entries(sessionmaker: SessionMaker) -> list[uuid.UUID]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(AuditEntry.case_id).where(AuditEntry.action == "case.purged")))


async def test_two_runs_at_once_purge_each_case_once(settings: Settings, two_workers: list[AppContext]) -> None:
    first, second = two_workers
    now = first.clock()
    today = organisation_date(now, settings.zone)
    due = [
        await case_with_everything(first.sessionmaker, now, today, **closed(61 + index, "duplicate", today))
        for index in range(8)
    ]
    kept = await case_with_everything(first.sessionmaker, now, today, **closed(5, "duplicate", today))
    before = await snapshot(first.sessionmaker, [kept])

    results = await asyncio.gather(purge_expired_cases(first), purge_expired_cases(second))

    assert sum(result["purged"] for result in results) == len(due)
    entries = await purge_entries(first.sessionmaker)
    assert sorted(entries) == sorted(due)  # one entry per case, none twice
    async with first.sessionmaker() as session:
        purged_on = dict((await session.execute(select(Case.id, Case.purged_on).where(Case.id.in_(due)))).all())
        assert set(purged_on.values()) == {today}
        assert await session.scalar(select(func.count()).select_from(CaseKey).where(CaseKey.case_id.in_(due))) == 0
        assert (await AuditLog(session).verify()).ok
    assert await snapshot(first.sessionmaker, [kept]) == before

    # The scheduled job is the same function, counted in job_runs; nothing is left for it.
    assert await run_job(second, BY_NAME["retention.purge"]) == {"purged": 0, "skipped": 0, "more": False, "held": 0}
    assert BY_NAME["retention.purge"].schedule == "35 * * * *"
    assert len(await purge_entries(first.sessionmaker)) == len(due)


async def test_a_case_someone_holds_is_left_for_the_next_run(settings: Settings, two_workers: list[AppContext]) -> None:
    context, _ = two_workers
    now = context.clock()
    today = organisation_date(now, settings.zone)
    held, free = [
        await case_with_everything(context.sessionmaker, now, today, **closed(90, "unsubstantiated", today)) for _ in range(2)
    ]
    engine = context.sessionmaker.kw["bind"]
    async with engine.connect() as other:
        # A staff act (a reopening, say) holding the row lock while retention runs.
        await other.execute(select(Case.id).where(Case.id == held).with_for_update())
        assert await purge_expired_cases(context) == {"purged": 1, "skipped": 1, "more": False, "held": 0}
        await other.rollback()
    assert await purge_entries(context.sessionmaker) == [free]
    assert await purge_expired_cases(context) == {"purged": 1, "skipped": 0, "more": False, "held": 0}
    assert sorted(await purge_entries(context.sessionmaker)) == sorted([held, free])


async def test_an_upload_that_began_before_the_purge_cannot_stage_after_it(
    settings: Settings, sessionmaker: SessionMaker
) -> None:
    now = utc_now()
    today = organisation_date(now, settings.zone)
    case_id = await case_with_everything(sessionmaker, now, today, **closed(61, "duplicate", today))
    await purge_expired_cases(context_for(settings, sessionmaker, FixedClock(now)))
    attachment = CaseAttachment(
        id=uuid.uuid4(), staging_case_id=case_id, staged_on=today, author="reporter", uploaded_on=today,
        stored_bytes=0, chunk_bytes=128, chunk_count=1, sealed_meta=b"",
    )  # fmt: skip
    with pytest.raises(NotFound):
        await AttachmentStore(sessionmaker).stage(attachment, AttachmentLimits(1024, 5, 4096))
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(CaseAttachment)) == 0


# --- through the API: what staff and the reporter meet ------------------------------------


async def age_closing(sessionmaker: SessionMaker, case_id: uuid.UUID, days: int) -> None:
    """Moves the case's closing `days` into the past: time passing, without waiting for it."""
    async with sessionmaker() as session:
        await session.execute(
            update(Case).where(Case.id == case_id).values(closed_on=Case.closed_on - timedelta(days=days))
        )
        await session.commit()


async def a_worked_case(office: Office) -> tuple[str, uuid.UUID, dict[str, str]]:  # noqa: F811
    """An identified employee's report with all a case gathers: investigated, the key
    granted, the identity requested (then withdrawn), messages both ways, the reporter's file; concluded
    substantiated. Returns the receipt, the case id, and a reporter session opened before."""
    client = office.client
    receipt, case_id = await office.file_identified_report("RETENTION")
    await office.assign_and_grant(case_id)
    asked = await office.ask(case_id, "investigator")
    assert asked.status_code == 201
    # Settled before the close: an open request would hold the case (tested apart).
    withdrawn = await client.post(
        f"/api/v1/identity-requests/{asked.json()['id']}/withdraw", headers=office["investigator"].headers
    )
    assert withdrawn.status_code == 200, withdrawn.text
    reporter = await reporter_headers(client, receipt)
    sent = await client.post("/api/v1/reporter/messages", json={"body": "one more thing"}, headers=reporter)
    assert sent.status_code == 201, sent.text
    uploaded = await client.post(
        "/api/v1/reporter/attachments", files={"file": ("ledger.pdf", b"%PDF-1.7\n" + os.urandom(3000), "application/pdf")}, headers=reporter
    )
    assert uploaded.status_code == 201, uploaded.text
    triage = office["triage"]
    case = (await client.get(f"/api/v1/cases/{case_id}", headers=triage.headers)).json()
    content_key = crypto.open_content_key(crypto.b64url_decode(case["content_key"]["sealed_key"]), triage.key, case_id)
    message_id = uuid.uuid4()
    sealed = crypto.seal_message(content_key, "thank you", case_id=case_id, message_id=message_id, author="staff")
    answered = await client.post(
        f"/api/v1/cases/{case_id}/messages",
        json={"id": str(message_id), "sealed_body": crypto.b64url_encode(sealed), "seal_format": 2},
        headers=triage.headers,
    )
    assert answered.status_code == 201, answered.text
    concluded = await transition(
        client, office["investigator"].headers, case_id, "conclude", case["version"], resolution="substantiated"
    )
    assert concluded.status_code == 200, concluded.text
    return receipt, case_id, reporter


async def test_a_purged_case_shows_its_metadata_and_refuses_every_act_on_its_content(
    office: Office, settings: Settings, sessionmaker: SessionMaker  # noqa: F811
) -> None:
    client = office.client
    receipt, case_id, old_session = await a_worked_case(office)
    triage, supervisor = office["triage"], office["supervisor"]
    auditor = {"Authorization": f"Bearer {await office.staff.token_for(await office.staff.create(Role.AUDITOR))}"}
    stats_before = (await client.get("/api/v1/stats", headers=triage.headers)).json()
    history_before = (await client.get(f"/api/v1/cases/{case_id}/history", headers=triage.headers)).json()
    values = await sealed_values(sessionmaker, case_id)
    await age_closing(sessionmaker, case_id, 1825)
    now = utc_now()
    today = organisation_date(now, settings.zone).isoformat()

    assert (await purge_expired_cases(context_for(settings, sessionmaker, FixedClock(now))))["purged"] == 1

    shown = await client.get(f"/api/v1/cases/{case_id}", headers=triage.headers)
    assert shown.status_code == 200, shown.text
    case = shown.json()
    assert (case["state"], case["resolution"], case["purged_on"]) == ("closed", "substantiated", today)
    assert (case["sealed_report"], case["reporter_public_key"], case["content_key"]) == (None, None, None)
    assert (case["messages"], case["attachments"], case["allowed_actions"]) == ([], [], [])
    assert case["identified"] is False and case["category"] == "bribery" and case["channel"] == "employee"
    assert (await client.get(f"/api/v1/cases/{case_id}/history", headers=triage.headers)).json() == history_before
    listed = (await client.get("/api/v1/cases", headers=triage.headers)).json()["items"]
    assert [(item["id"], item["purged_on"]) for item in listed] == [(str(case_id), today)]
    assert (await client.get("/api/v1/stats", headers=triage.headers)).json() == stats_before

    reopen = await transition(client, supervisor.headers, case_id, "reopen", case["version"], reason="new evidence")
    assert reopen.status_code == 409 and reopen.json()["type"] == PROBLEM + "case-purged"
    assert f"its content was deleted by retention on {today}" in reopen.json()["detail"]
    assert reopen.json()["purged_on"] == today
    message = await client.post(
        f"/api/v1/cases/{case_id}/messages",
        json={"id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(os.urandom(64)), "seal_format": 2},
        headers=triage.headers,
    )
    grant = await client.post(
        f"/api/v1/cases/{case_id}/grants",
        json={
            "grantee": supervisor.username,
            "fingerprint": supervisor.key.public_key.fingerprint,
            "sealed_key": crypto.b64url_encode(os.urandom(crypto.SEALED_CONTENT_KEY_BYTES)),
        },
        headers=triage.headers,
    )
    identity_request = await office.ask(case_id, "supervisor")
    identity = await client.get(f"/api/v1/cases/{case_id}/identity", headers=office["investigator"].headers)
    for refused in (message, grant, identity_request, identity):
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"] == PROBLEM + "case-purged" and today in refused.json()["detail"]
    assert (await client.get(f"/api/v1/cases/{case_id}/identity-requests", headers=triage.headers)).json() == []

    # The reporter: the receipt opens nothing, answered like any unknown receipt; a
    # session opened before the purge is refused, not an error.
    login = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
    unknown = await client.post("/api/v1/reporter/sessions", json={"receipt": "000-000-000-000-000-000-000"})
    assert login.status_code == unknown.status_code == 401
    assert login.json()["type"] == unknown.json()["type"]
    for method, path in (("GET", "/api/v1/reporter/report"), ("POST", "/api/v1/reporter/messages")):
        late = await client.request(method, path, json={"body": "still there?"}, headers=old_session)
        assert late.status_code == 401, late.text
    upload = await client.post(
        "/api/v1/reporter/attachments", files={"file": ("a.txt", b"late", "text/plain")}, headers=old_session
    )
    assert upload.status_code == 401, upload.text
    page = await client.post("/status", data={"step": "open", "receipt": receipt})
    assert page.status_code == 401 and "이 접수번호의 신고가 없습니다" in page.text

    # And the database: none of its sealed bytes anywhere; the chain verifies.
    assert await where_found(sessionmaker, values) == []
    verified = await client.get("/api/v1/audit/verify", headers=auditor)
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    purges = (await client.get("/api/v1/audit", params={"action": "case.purged"}, headers=auditor)).json()["items"]
    assert [(entry["case_id"], entry["details"]["outcome"]) for entry in purges] == [(str(case_id), "substantiated")]


async def test_reopening_stops_the_clock_and_a_new_closing_starts_it_again(
    client, staff, settings: Settings, sessionmaker: SessionMaker
) -> None:
    triage, supervisor = await staff.headers_for(Role.TRIAGE), await staff.headers_for(Role.SUPERVISOR)
    async with sessionmaker() as session:
        case = case_row(state="assessing")
        session.add(case)
        await session.commit()
    context = context_for(settings, sessionmaker)
    dismissed = await transition(client, triage, case.id, "dismiss", 1, resolution="duplicate")
    assert dismissed.status_code == 200, dismissed.text
    await age_closing(sessionmaker, case.id, 60)
    assert await due_case_ids(context, utc_now()) == [case.id]

    # Reopened after the candidates were listed: under the lock the case is seen open.
    reopened = await transition(client, supervisor, case.id, "reopen", 2, reason="a second report adds to it")
    assert reopened.status_code == 200, reopened.text
    before = await snapshot(sessionmaker, [case.id])
    assert await purge_case(context, case.id) is False
    assert await snapshot(sessionmaker, [case.id]) == before
    assert await due_case_ids(context, utc_now()) == []

    # Closed again today: the sixty days count from now, not from the first closing.
    again = await transition(client, triage, case.id, "dismiss", 3, resolution="not_admissible")
    assert again.status_code == 200, again.text
    assert (await purge_expired_cases(context))["purged"] == 0
    await age_closing(sessionmaker, case.id, 59)
    assert (await purge_expired_cases(context))["purged"] == 0
    await age_closing(sessionmaker, case.id, 1)
    assert (await purge_expired_cases(context))["purged"] == 1
    async with sessionmaker() as session:
        assert (await session.get(Case, case.id)).purged_on == organisation_date(utc_now(), settings.zone)


async def test_a_case_with_identity_work_pending_is_held_until_it_is_settled(
    settings: Settings, sessionmaker: SessionMaker
) -> None:
    """An open request may still be released, and a reporter kept from a legal decision
    must still be told of it: neither may vanish with the case's content."""
    now = utc_now()
    today = organisation_date(now, settings.zone)
    context = context_for(settings, sessionmaker, FixedClock(now))
    pending = await case_with_everything(sessionmaker, now, today, **closed(61, "duplicate", today))
    withheld = await case_with_everything(sessionmaker, now, today, **closed(61, "duplicate", today))
    async with sessionmaker() as session:
        await session.execute(
            update(IdentityRequest).where(IdentityRequest.case_id == pending).values(
                status="pending", withdrawn_by_id=None, withdrawn_at=None
            )
        )
        supervisor = await staff_member(session, Role.SUPERVISOR)
        await session.execute(
            update(IdentityRequest).where(IdentityRequest.case_id == withheld).values(
                status="approved",
                withdrawn_by_id=None,
                withdrawn_at=None,
                approver_id=supervisor.id,
                approved_at=now,
                legal_ground="a court order",
                notice_withheld=True,
                withheld_reason="the investigation is still under way",
            )
        )
        await session.commit()

    assert await purge_expired_cases(context) == {"purged": 0, "skipped": 0, "more": False, "held": 2}
    # The reporter is told, and the other request is withdrawn: both go at the next run.
    async with sessionmaker() as session:
        await session.execute(
            update(IdentityRequest).where(IdentityRequest.case_id == withheld).values(
                status="withdrawn", withdrawn_by_id=supervisor.id, withdrawn_at=now, notice_lifted_at=now,
                notice_lifted_by_id=supervisor.id,
            )
        )
        await session.execute(
            update(IdentityRequest).where(IdentityRequest.case_id == pending).values(
                status="withdrawn", withdrawn_by_id=supervisor.id, withdrawn_at=now
            )
        )
        await session.commit()
    assert await purge_expired_cases(context) == {"purged": 2, "skipped": 0, "more": False, "held": 0}
