"""The `notifications.deliver` job: due outbox events become deliveries, and due
deliveries are sent, each in a transaction of its own.

Turning events into deliveries happens in one transaction that deletes the events it
read, so an event becomes its deliveries exactly once however many workers run. A
delivery is sent while its row is locked (`FOR UPDATE SKIP LOCKED`, so two workers never
send the same one) and marked sent in the same transaction: a process killed before the
commit leaves it pending, and the next run sends it again; only a crash between the
receiver's acceptance and our commit can send it twice, and then with the same
Message-ID / webhook-id, by which receivers drop duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.context import AppContext
from app.db.session import own_transaction
from app.domain.notifications import (
    BATCHED_KINDS,
    DeliveryChannel,
    DeliveryState,
    EventKind,
    audit_failure_notice,
    deadline_notice,
    digest_notice,
    retry_delay,
)
from app.jobs.registry import JobResult
from app.notifications.models import NotificationDelivery, NotificationEvent
from app.notifications.repository import NotificationRepository
from app.notifications.senders import DeliveryFailed, build_mail, call_webhook, send_mail
from app.settings import Settings

logger = logging.getLogger("cleanwindow.notifications")

EVENTS_PER_RUN = 5000
DELIVERIES_PER_RUN = 500
# A run stops taking deliveries after this long, so that a slow receiver delays the next
# tick's new events by a minute at most.
RUN_BUDGET_SECONDS = 45
# Roles told instead when nobody of an event's audience can be mailed: someone must hear
# that a report is waiting.
FALLBACK_AUDIENCE = ("admin",)
DIGEST = "digest"  # the kind of a batched mail, which may count several event kinds


@dataclass
class _Grouped:
    """What one recipient (an address, or a webhook) is owed, per kind."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    case_ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    deadlines: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    audit: dict | None = None


def queue_hint(settings: Settings) -> str:
    if settings.notify.queue_url:
        return f"대기열 / Queue: {settings.notify.queue_url}"
    return "대기열 / Queue: cleanwindow cases list"


def _email_deliveries(
    settings: Settings, by_address: dict[str, _Grouped], user_ids: dict[str, str], now: datetime
) -> list[NotificationDelivery]:
    deliveries = []
    hint = queue_hint(settings)
    for address, owed in by_address.items():
        notices = []
        batched = {kind: n for kind, n in owed.counts.items() if EventKind(kind) in BATCHED_KINDS}
        if batched:
            notices.append((DIGEST, digest_notice(batched)))
        for kind, items in owed.deadlines.items():
            notices.append(
                (
                    kind,
                    deadline_notice(
                        EventKind(kind),
                        [item["case_id"] for item in items],
                        [item["deadline"] for item in items],
                        [item["due_on"] for item in items],
                    ),
                )
            )
        if owed.audit is not None:
            notices.append((EventKind.AUDIT_VERIFICATION_FAILED.value, audit_failure_notice(owed.audit.get("first_bad"))))
        for kind, notice in notices:
            deliveries.append(
                NotificationDelivery(
                    id=uuid.uuid4(),
                    channel=DeliveryChannel.EMAIL.value,
                    target=address,
                    kind=kind,
                    # The account, so that a retry follows a changed address and stops for a
                    # deactivated account instead of mailing whoever had the old address.
                    payload={"subject": notice.subject, "body": notice.body(hint), "recipient_id": user_ids[address]},
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    return deliveries


def _webhook_deliveries(settings: Settings, owed: _Grouped, now: datetime) -> list[NotificationDelivery]:
    data_by_kind: dict[str, dict] = {}
    for kind, count in owed.counts.items():
        if EventKind(kind) in BATCHED_KINDS:
            # Sorted, not in arrival order: the order would say which came first.
            data_by_kind[kind] = {"count": count, "case_ids": sorted(owed.case_ids[kind])}
    for kind, items in owed.deadlines.items():
        data_by_kind[kind] = {"cases": sorted(items, key=lambda item: (item["due_on"], item["case_id"]))}
    if owed.audit is not None:
        data_by_kind[EventKind.AUDIT_VERIFICATION_FAILED.value] = dict(owed.audit)
    return [
        NotificationDelivery(
            id=uuid.uuid4(),
            channel=DeliveryChannel.WEBHOOK.value,
            target=endpoint.name,
            kind=kind,
            payload=data,
            created_at=now,
            next_attempt_at=now,
        )
        for endpoint in settings.notify.webhooks
        for kind, data in sorted(data_by_kind.items())
    ]


async def _recipients(repository: NotificationRepository, event: NotificationEvent) -> dict[str, str]:
    """Address → account id of whoever hears of the event."""
    if event.recipient_id is not None:
        named = await repository.mailable_user(event.recipient_id)
        if named is not None:
            return {named.email: str(named.id)}
    for roles in (event.audience, FALLBACK_AUDIENCE):
        found = {user.email: str(user.id) for user in await repository.mailable_staff(roles)}
        if found:
            return found
    return {}


def _owe(owed: _Grouped, event: NotificationEvent) -> None:
    kind = EventKind(event.kind)
    if kind in BATCHED_KINDS:
        owed.counts[event.kind] += 1
        if event.case_id is not None:
            owed.case_ids[event.kind].append(str(event.case_id))
    elif kind is EventKind.AUDIT_VERIFICATION_FAILED:
        owed.audit = {"first_bad": event.details.get("first_bad")}
    else:
        owed.deadlines[event.kind].append(
            {"case_id": str(event.case_id), "deadline": event.details["deadline"], "due_on": event.details["due_on"]}
        )


@dataclass
class Dispatched:
    events: int = 0
    # Events no one could be told of by e-mail (no address among the audience nor the
    # administrators) and no webhook received: logged, and counted in the job's result.
    unrouted: int = 0


async def dispatch_due_events(context: AppContext, now: datetime) -> Dispatched:
    """Turn due events into deliveries."""
    settings = context.settings
    outcome = Dispatched()
    async with own_transaction(context.sessionmaker) as session:
        repository = NotificationRepository(session)
        events = await repository.claim_due_events(now, EVENTS_PER_RUN)
        by_address: dict[str, _Grouped] = defaultdict(_Grouped)
        user_ids: dict[str, str] = {}
        for_webhooks = _Grouped()
        for event in events:
            recipients = await _recipients(repository, event) if settings.smtp_url is not None else {}
            for address, user_id in recipients.items():
                _owe(by_address[address], event)
                user_ids[address] = user_id
            _owe(for_webhooks, event)
            if not recipients and not settings.notify.webhooks:
                outcome.unrouted += 1
        deliveries = _email_deliveries(settings, by_address, user_ids, now) + _webhook_deliveries(
            settings, for_webhooks, now
        )
        session.add_all(deliveries)
        await repository.forget_events(event.id for event in events)
        outcome.events = len(events)
    if outcome.unrouted:
        logger.warning(
            "notices reached no one: no staff address (nor an administrator's) and no webhook",
            extra={"unrouted": outcome.unrouted},
        )
    return outcome


async def send_one(context: AppContext, now: datetime) -> DeliveryState | None:
    """Send the most overdue pending delivery, if any; returns its new state."""
    settings = context.settings
    async with own_transaction(context.sessionmaker) as session:
        delivery = await NotificationRepository(session).claim_due_delivery(now)
        if delivery is None:
            return None
        try:
            async with asyncio.timeout(settings.notify.send_timeout_seconds * 2):
                await _send(settings, NotificationRepository(session), delivery, context.clock())
        except RecipientGone as gone:
            delivery.state = DeliveryState.DEAD.value
            delivery.last_error = str(gone)
            return DeliveryState.DEAD
        except Exception as error:
            # Any failure is one failed try, never a crashed run: a delivery that cannot be
            # sent must not hold up the others behind it. Only the type is kept, or our
            # short reason: an exception's text may quote the message.
            delivery.attempts += 1
            reason = str(error) if isinstance(error, DeliveryFailed) else type(error).__name__
            delivery.last_error = reason[:500]
            if delivery.attempts >= settings.notify.max_attempts:
                delivery.state = DeliveryState.DEAD.value
                logger.warning("delivery given up", extra={"delivery": str(delivery.id), "channel": delivery.channel})
            else:
                wait = retry_delay(delivery.attempts, settings.notify.retry_base_seconds, settings.notify.retry_max_seconds)
                delivery.next_attempt_at = context.clock() + timedelta(seconds=wait)
            return DeliveryState(delivery.state)
        delivery.state = DeliveryState.SENT.value
        delivery.sent_at = context.clock()
        delivery.attempts += 1
        delivery.last_error = None
        return DeliveryState.SENT


class RecipientGone(Exception):
    """The account was deactivated or its address cleared since the notice was made."""


async def _send(
    settings: Settings, repository: NotificationRepository, delivery: NotificationDelivery, sent_at: datetime
) -> None:
    if delivery.channel == DeliveryChannel.EMAIL.value:
        if settings.smtp_url is None:
            raise DeliveryFailed("e-mail is off (SMTP_URL unset)")
        recipient = await repository.mailable_user(uuid.UUID(delivery.payload["recipient_id"]))
        if recipient is None:
            raise RecipientGone("the account is deactivated or has no address any more")
        delivery.target = recipient.email
        message = build_mail(
            settings, str(delivery.id), delivery.target, delivery.payload["subject"], delivery.payload["body"], sent_at
        )
        await send_mail(settings, message)
        return
    endpoint = next((hook for hook in settings.notify.webhooks if hook.name == delivery.target), None)
    if endpoint is None:
        raise DeliveryFailed(f"no webhook named {delivery.target!r} is configured any more")
    await call_webhook(
        endpoint, str(delivery.id), delivery.kind, delivery.payload, sent_at, settings.notify.send_timeout_seconds
    )


async def deliver_notifications(context: AppContext) -> JobResult:
    now = context.clock()
    dispatched = await dispatch_due_events(context, now)
    outcome = {state.value: 0 for state in DeliveryState}
    outcome["retry"] = 0
    started = time.monotonic()
    for _ in range(DELIVERIES_PER_RUN):
        if time.monotonic() - started > RUN_BUDGET_SECONDS:
            break  # the rest waits for the next tick
        state = await send_one(context, now)
        if state is None:
            break
        outcome["retry" if state is DeliveryState.PENDING else state.value] += 1
    return {
        "events": dispatched.events,
        "unrouted": dispatched.unrouted,
        "sent": outcome["sent"],
        "retry": outcome["retry"],
        "dead": outcome["dead"],
    }
