"""A startup check of the channel routing: a routed channel whose officers cannot receive
reports would seal them to nobody but the recovery key, and nothing else would say so."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from app.context import AppContext
from app.intake.repository import IntakeRepository

logger = logging.getLogger("cleanwindow.intake")


async def warn_about_unreadable_channels(context: AppContext) -> None:
    """Log a warning per routed channel naming the officers who will not receive its
    reports (no such account, not an active triage officer, or no registered key). Only
    configuration and staff usernames are named, never anything about a report. Checked
    at startup only: a key registered later fixes it without a restart."""
    intake = context.settings.intake
    if not intake.channel_recipients:
        return
    try:
        async with context.own_transaction() as session:
            repository = IntakeRepository(session)
            for channel, usernames in intake.channel_recipients.items():
                receiving = {user.username for user in await repository.triage_recipients(usernames)}
                missing = sorted(set(usernames) - receiving)
                if not receiving:
                    logger.warning(
                        "channel %s is routed to officers none of whom can receive its reports "
                        "(an active triage account with a registered key): they are sealed to "
                        "the recovery key only",
                        channel.value,
                        extra={"channel": channel.value, "officers_without_key": missing},
                    )
                elif missing:
                    logger.warning(
                        "channel %s: some routed officers will not receive its reports (no active "
                        "triage account with a registered key)",
                        channel.value,
                        extra={"channel": channel.value, "officers_without_key": missing},
                    )
    except (SQLAlchemyError, OSError) as error:
        # The service can still take reports (sealed to the recovery key); say why the
        # routing went unchecked rather than refuse to start.
        logger.warning("could not check the channel routing", extra={"error_type": type(error).__name__})
