"""Notices as staff and integrations receive them: a real SMTP server and a real HTTP
receiver, a database of the test's own, the deliver job run as a worker runs it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from app.cases.models import Case
from app.domain.clock import utc_now
from app.domain.notifications import EventKind
from app.drills.models import DrillEffect
from app.notifications.delivery import deliver_notifications
from app.notifications.outbox import Outbox
from tests.cases.helpers import insert_campaign, insert_case
from tests.intake.helpers import report_body, submit_ok
from tests.notifications.helpers import SENDER, WEBHOOK_SECRET, notifying, service_on, token_headers
from tests.notifications.servers import SmtpServer, WebhookReceiver

MARKER = "UNIQUE-CONTENT-MARKER-7f3a"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def hooks():
    with WebhookReceiver() as receiver:
        yield receiver


async def test_new_reports_reach_triage_as_one_digest_without_content(fresh_database_url, settings, smtp, hooks):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=hooks.url)) as service:
        triage = await service.add_staff("triage", "Triage.One@Agency.EXAMPLE")
        await service.add_staff("triage", None)  # no address: no mail
        await service.add_staff("investigator", "investigator@agency.example")  # not triage's notice
        for _ in range(2):
            await submit_ok(service.client, report_body(marker=MARKER, category="bribery", org_unit="construction_transport"))
        async with service.sessionmaker() as session:
            case_ids = {str(case_id) for case_id in (await session.scalars(select(Case.id))).all()}

        result = await deliver_notifications(service.context)
        assert result["events"] == 2 and result["sent"] == 2, result

        [mail] = smtp.wait_for(1)
        assert mail.recipients == [triage.email] and mail.sender == SENDER
        assert "2 new report(s) waiting" in mail.text and "새 신고 2건" in mail.text
        for secret in (MARKER, "bribery", "construction_transport", "금품", "permit", *case_ids):
            assert secret not in mail.text and secret not in mail.message.as_string(), f"{secret!r} leaked"
        [delivery] = [d for d in await service.deliveries() if d.channel == "email"]
        assert mail.message["Message-ID"] == f"<{delivery.id}@notices.example.org>"

        [call] = hooks.calls
        Webhook(WEBHOOK_SECRET).verify(call.body, call.headers)  # raises if the signature is wrong
        payload = call.json()
        assert payload["type"] == "case.received"
        assert payload["data"] == {"count": 2, "case_ids": sorted(case_ids)}
        assert MARKER not in call.body and "bribery" not in call.body

        # Nothing is owed any more: a second run sends nothing.
        assert await service.events() == []
        again = await deliver_notifications(service.context)
        assert again == {"events": 0, "unrouted": 0, "sent": 0, "retry": 0, "dead": 0}
        assert len(smtp.accepted) == 1 and len(hooks.calls) == 1


async def test_new_report_notices_wait_for_the_end_of_their_batch(fresh_database_url, settings, smtp):
    async with service_on(
        fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None, batch_seconds=3600)
    ) as service:
        await service.add_staff("triage", "triage@agency.example")
        await submit_ok(service.client)
        [event] = await service.events()
        # The event carries no time finer than its batch: the end of the hour it fell in.
        assert event.not_before.timestamp() % 3600 == 0
        assert utc_now() < event.not_before <= utc_now() + timedelta(hours=1)

        assert (await deliver_notifications(service.context))["events"] == 0
        assert smtp.accepted == []
        after_the_batch = event.not_before + timedelta(seconds=1)
        assert (await deliver_notifications(service.at(after_the_batch)))["sent"] == 1
        [mail] = smtp.wait_for(1)
        assert "1 new report(s)" in mail.text


async def test_a_change_that_rolls_back_sends_nothing(fresh_database_url, settings, smtp, hooks):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=hooks.url)) as service:
        await service.add_staff("triage", "triage@agency.example")
        case = await insert_case(service.sessionmaker)
        async with service.sessionmaker() as session:
            await Outbox(session, service.settings).emit(
                EventKind.DEADLINE_MISSED,
                utc_now(),
                audience=["triage"],
                case_id=case.id,
                details={"deadline": "acknowledge", "due_on": "2026-11-01"},
            )
            await session.rollback()
        # A refused submission (a proof of work that does not solve) is another such change.
        refused = await service.client.post(
            "/api/v1/reports", json={**report_body(), "pow": {"challenge": "AAAA", "nonce": "1"}}
        )
        assert 400 <= refused.status_code < 500
        assert await service.events() == []
        assert (await deliver_notifications(service.context))["sent"] == 0
        assert smtp.accepted == [] and hooks.calls == []


async def test_a_webhook_that_fails_three_times_then_succeeds_gets_the_event_signed(fresh_database_url, settings, hooks):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=None, webhook_url=hooks.url)) as service:
        case = await insert_case(service.sessionmaker)
        async with service.sessionmaker() as session:
            await Outbox(session, service.settings).emit(
                EventKind.DEADLINE_APPROACHING,
                utc_now(),
                audience=["triage"],
                case_id=case.id,
                details={"deadline": "acknowledge", "due_on": "2026-12-05"},
            )
            await session.commit()
        hooks.statuses = [500, 503, 502]
        outcomes = [await deliver_notifications(service.context) for _ in range(4)]
        assert [outcome["retry"] for outcome in outcomes] == [1, 1, 1, 0]
        assert outcomes[-1]["sent"] == 1
        assert len(hooks.calls) == 4
        # Every try is the same message: one webhook-id, by which the receiver drops repeats.
        assert len({call.headers["webhook-id"] for call in hooks.calls}) == 1
        last = hooks.calls[-1]
        Webhook(WEBHOOK_SECRET).verify(last.body, last.headers)
        assert last.json()["data"] == {
            "cases": [{"case_id": str(case.id), "deadline": "acknowledge", "due_on": "2026-12-05"}]
        }
        with pytest.raises(Exception):
            Webhook("whsec_" + "QUFB" * 11).verify(last.body, last.headers)
        [delivery] = await service.deliveries()
        assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 4, None)


async def test_a_notice_that_never_gets_through_becomes_a_dead_letter_an_admin_can_send_again(
    fresh_database_url, settings, smtp
):
    async with service_on(
        fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None, max_attempts=2)
    ) as service:
        supervisor = await service.add_staff("supervisor", "supervisor@agency.example")
        case = await insert_case(service.sessionmaker)
        async with service.sessionmaker() as session:
            await Outbox(session, service.settings).emit(
                EventKind.DEADLINE_MISSED,
                utc_now(),
                audience=["supervisor"],
                case_id=case.id,
                details={"deadline": "feedback", "due_on": "2026-11-20"},
            )
            await session.commit()
        smtp.handler.answers = ["451 4.3.0 mailbox busy", "451 4.3.0 mailbox busy"]
        assert (await deliver_notifications(service.context))["retry"] == 1
        assert (await deliver_notifications(service.context))["dead"] == 1
        assert smtp.accepted == []

        admin, triage = await token_headers(service, "admin"), await token_headers(service, "triage")
        assert (await service.client.get("/api/v1/notifications/failed", headers=triage)).status_code == 403
        listed = await service.client.get("/api/v1/notifications/failed", headers=admin)
        assert listed.status_code == 200
        [dead] = listed.json()
        assert dead["state"] == "dead" and dead["attempts"] == 2 and dead["channel"] == "email"
        assert dead["target"] == supervisor.email and dead["last_error"].startswith("SMTP")
        # A dead letter stays dead until someone acts: the job does not try it again.
        assert (await deliver_notifications(service.context))["sent"] == 0

        retried = await service.client.post(f"/api/v1/notifications/{dead['id']}/retry", headers=admin)
        assert retried.status_code == 200 and retried.json()["state"] == "pending"
        again = await service.client.post(f"/api/v1/notifications/{dead['id']}/retry", headers=admin)
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
        missing = await service.client.post(f"/api/v1/notifications/{uuid.uuid4()}/retry", headers=admin)
        assert missing.status_code == 404
        assert (await deliver_notifications(service.context))["sent"] == 1
        [mail] = smtp.wait_for(1)
        assert mail.recipients == [supervisor.email]
        audit = await service.client.get("/api/v1/audit", headers=admin)
        assert "notification.retried" in [entry["action"] for entry in audit.json()["items"]]


async def test_a_drill_case_causes_no_notice_only_simulated_effects(fresh_database_url, settings, smtp, hooks):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=hooks.url)) as service:
        await service.add_staff("triage", "triage@agency.example")
        for blind in (False, True):
            campaign = await insert_campaign(service.sessionmaker, blind=blind)
            case = await insert_case(
                service.sessionmaker, is_drill=True, drill_campaign_id=campaign.id, shown_as_drill=not blind
            )
            async with service.sessionmaker() as session:
                outbox = Outbox(session, service.settings)
                for kind in (EventKind.CASE_RECEIVED, EventKind.DEADLINE_MISSED):
                    written = await outbox.emit(
                        kind,
                        utc_now(),
                        audience=["triage"],
                        case_id=case.id,
                        drill_campaign_id=campaign.id,
                        details={"deadline": "acknowledge", "due_on": "2026-11-01"},
                    )
                    assert written is None
                await session.commit()
            async with service.sessionmaker() as session:
                effects = (
                    await session.scalars(select(DrillEffect.kind).where(DrillEffect.campaign_id == campaign.id))
                ).all()
            assert sorted(effects) == ["notification", "notification", "webhook", "webhook"]
        assert await service.events() == []
        await deliver_notifications(service.context)
        assert smtp.accepted == [] and hooks.calls == []


async def test_a_reporters_message_goes_to_the_assigned_investigator(fresh_database_url, settings, smtp):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None)) as service:
        await service.add_staff("triage", "triage@agency.example")
        investigator = await service.add_staff("investigator", "investigator@agency.example")
        receipt = await submit_ok(service.client)
        async with service.sessionmaker() as session:
            case = await session.scalar(select(Case))
            case.assignee_id = investigator.id
            await session.commit()
        await deliver_notifications(service.context)  # the new report's digest, to triage
        session_token = await service.client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
        headers = {"Authorization": f"Bearer {session_token.json()['token']}"}
        sent = await service.client.post("/api/v1/reporter/messages", json={"body": MARKER}, headers=headers)
        assert sent.status_code == 201, sent.text
        await deliver_notifications(service.context)
        mails = smtp.wait_for(2)
        assert [mail.recipients for mail in mails] == [["triage@agency.example"], [investigator.email]]
        assert "1 new message(s) from reporters" in mails[1].text
        assert MARKER not in mails[1].text


async def test_two_workers_delivering_at_once_send_each_notice_once(fresh_database_url, settings, smtp, hooks):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=hooks.url)) as service:
        recipients = [await service.add_staff("investigator", f"investigator{n}@agency.example") for n in range(12)]
        async with service.sessionmaker() as session:
            outbox = Outbox(session, service.settings)
            for recipient in recipients:
                case = await insert_case(service.sessionmaker, assignee_id=recipient.id)
                await outbox.emit(
                    EventKind.DEADLINE_APPROACHING,
                    utc_now(),
                    audience=["triage"],
                    case_id=case.id,
                    recipient_id=recipient.id,
                    details={"deadline": "acknowledge", "due_on": "2026-12-05"},
                )
            await session.commit()
        first, second = await asyncio.gather(deliver_notifications(service.context), deliver_notifications(service.context))
        assert first["events"] + second["events"] == 12
        assert first["sent"] + second["sent"] == 12 + 1  # a mail per investigator, one webhook call
        mails = smtp.wait_for(12)
        assert sorted(address for mail in mails for address in mail.recipients) == sorted(r.email for r in recipients)
        assert len({mail.message["Message-ID"] for mail in mails}) == 12
        assert len(hooks.calls) == 1 and len(hooks.calls[0].json()["data"]["cases"]) == 12
