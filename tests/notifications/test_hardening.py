"""What a red-team pass on the notifications found, each as the attacker or the unlucky
operator meets it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from app.domain.clock import utc_now
from app.domain.notifications import EventKind
from app.drills.models import DrillEffect
from app.notifications.delivery import deliver_notifications
from app.notifications.models import NotificationDelivery
from app.notifications.outbox import Outbox
from app.settings import NotifySettings
from tests.cases.helpers import insert_campaign, insert_case
from tests.notifications.helpers import notifying, service_on
from tests.notifications.servers import SmtpServer


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


async def emit_missed(service, case_id, **kwargs) -> None:
    async with service.sessionmaker() as session:
        await Outbox(session, service.settings).emit(
            EventKind.DEADLINE_MISSED,
            utc_now(),
            case_id=case_id,
            details={"deadline": "acknowledge", "due_on": "2026-11-01"},
            **{"audience": ["supervisor"], **kwargs},
        )
        await session.commit()


async def test_one_delivery_that_cannot_be_sent_does_not_hold_up_the_others(fresh_database_url, settings, smtp):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None)) as service:
        broken = await service.add_staff("investigator", "placeholder@agency.example")
        good = await service.add_staff("supervisor", "supervisor@agency.example")
        async with service.sessionmaker() as session:
            # Written before validation existed, or by hand: an address the mail library refuses.
            await session.execute(
                text("UPDATE staff_users SET email = :email WHERE id = :id"),
                {"email": "tri\x01age@agency.example", "id": broken.id},
            )
            await session.commit()
        await emit_missed(service, (await insert_case(service.sessionmaker)).id, recipient_id=broken.id, audience=["triage"])
        await emit_missed(service, (await insert_case(service.sessionmaker)).id)

        result = await deliver_notifications(service.context)
        assert (result["sent"], result["retry"]) == (1, 1), result
        [mail] = smtp.wait_for(1)
        assert mail.recipients == [good.email]
        failed = [d for d in await service.deliveries() if d.state == "pending"]
        assert len(failed) == 1 and failed[0].attempts == 1 and failed[0].last_error == "ValueError"


async def test_a_batch_window_is_one_digest_even_with_jitter(fresh_database_url, settings, smtp):
    batched = notifying(settings, smtp_url=smtp.url, webhook_url=None, batch_seconds=3600)
    batched = batched.model_copy(update={"notify": NotifySettings(batch_jitter_seconds=300)})
    async with service_on(fresh_database_url, batched) as service:
        await service.add_staff("triage", "triage@agency.example")
        case = await insert_case(service.sessionmaker)
        window_start = utc_now().replace(minute=0, second=0, microsecond=0)
        async with service.sessionmaker() as session:
            outbox = Outbox(session, service.settings)
            releases = []
            for minute in (1, 17, 59, 61, 119):
                event = await outbox.emit(
                    EventKind.CASE_RECEIVED, window_start + timedelta(minutes=minute), audience=["triage"], case_id=case.id
                )
                releases.append(event.not_before)
            await session.commit()
        first_window, second_window = releases[:3], releases[3:]
        assert len(set(first_window)) == 1 and len(set(second_window)) == 1
        assert first_window[0] != second_window[0] - timedelta(hours=1), "the jitter should differ between windows"
        for release, window_end in ((first_window[0], window_start + timedelta(hours=1)), (second_window[0], window_start + timedelta(hours=2))):
            assert window_end <= release <= window_end + timedelta(seconds=300)

        await deliver_notifications(service.at(second_window[0] + timedelta(seconds=1)))
        [mail] = smtp.wait_for(1)
        assert "5 new report(s)" in mail.text


async def test_a_notice_no_one_of_its_audience_can_receive_goes_to_the_administrators(fresh_database_url, settings, smtp):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None)) as service:
        await service.add_staff("triage", None)
        await emit_missed(service, (await insert_case(service.sessionmaker)).id, audience=["triage"])
        nobody = await deliver_notifications(service.context)
        assert nobody["unrouted"] == 1 and nobody["sent"] == 0

        admin = await service.add_staff("admin", "admin@agency.example")
        await emit_missed(service, (await insert_case(service.sessionmaker)).id, audience=["triage"])
        told = await deliver_notifications(service.context)
        assert told["unrouted"] == 0 and told["sent"] == 1
        [mail] = smtp.wait_for(1)
        assert mail.recipients == [admin.email]


async def test_a_retry_follows_the_account_not_the_old_address(fresh_database_url, settings, smtp):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None)) as service:
        moved = await service.add_staff("supervisor", "old@agency.example")
        leaving = await service.add_staff("supervisor", "leaving@agency.example")
        await emit_missed(service, (await insert_case(service.sessionmaker)).id)
        smtp.handler.answers = ["451 busy", "451 busy"]
        assert (await deliver_notifications(service.context))["retry"] == 2
        async with service.sessionmaker() as session:
            await session.execute(text("UPDATE staff_users SET email = 'new@agency.example' WHERE id = :id"), {"id": moved.id})
            await session.execute(text("UPDATE staff_users SET is_active = false WHERE id = :id"), {"id": leaving.id})
            await session.commit()
        result = await deliver_notifications(service.context)
        assert (result["sent"], result["dead"]) == (1, 1), result
        [mail] = smtp.wait_for(1)
        assert mail.recipients == ["new@agency.example"]
        [dead] = [d for d in await service.deliveries() if d.state == "dead"]
        assert dead.target == leaving.email and "deactivated" in dead.last_error


async def test_the_password_is_never_sent_to_a_server_that_offers_no_starttls(fresh_database_url, settings, smtp):
    with_login = notifying(settings, smtp_url=smtp.url, webhook_url=None).model_copy(
        update={"smtp_url": SecretStr(f"smtp://notices:secret-password@127.0.0.1:{smtp.port}")}
    )
    async with service_on(fresh_database_url, with_login) as service:
        await service.add_staff("supervisor", "supervisor@agency.example")
        await emit_missed(service, (await insert_case(service.sessionmaker)).id)
        assert (await deliver_notifications(service.context))["retry"] == 1
        [delivery] = await service.deliveries()
        assert delivery.last_error.startswith("SMTP") and smtp.handler.receiving == 0


async def test_a_drill_case_is_known_by_its_row_even_when_the_caller_forgets(fresh_database_url, settings, smtp):
    async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None)) as service:
        await service.add_staff("supervisor", "supervisor@agency.example")
        campaign = await insert_campaign(service.sessionmaker, blind=True)
        case = await insert_case(service.sessionmaker, is_drill=True, drill_campaign_id=campaign.id, shown_as_drill=False)
        await emit_missed(service, case.id)  # no drill_campaign_id given
        assert await service.events() == []
        async with service.sessionmaker() as session:
            kinds = (await session.scalars(select(DrillEffect.kind).where(DrillEffect.case_id == case.id))).all()
        assert kinds == ["notification"]
        await deliver_notifications(service.context)
        assert smtp.accepted == []
        async with service.sessionmaker() as session:
            assert (await session.scalars(select(NotificationDelivery))).all() == []
