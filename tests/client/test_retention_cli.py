"""The investigator CLI on a case whose content retention deleted: `show` prints what
remains, the commands that need the content say why there is none."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from app.cases.models import Case
from app.cases.retention import purge_expired_cases
from app.context import AppContext
from app.db.session import build_sessionmaker
from app.domain.clock import organisation_date, utc_now
from app.domain.kdf import TEST_KEY_DERIVATION
from app.settings import Settings
from tests.client.helpers import Desk


async def test_show_prints_the_metadata_of_a_purged_case_and_reply_says_why_it_cannot(
    desk: Desk, settings: Settings
) -> None:
    server, triage = desk.server, desk.triage
    for action, extra in (("acknowledge", ()), ("start_assessment", ()), ("dismiss", ("--resolution", "duplicate"))):
        server.ok("cases", "transition", desk.case_id, action, *extra, officer=triage)
    engine = create_async_engine(server.database_url)
    try:
        sessionmaker = build_sessionmaker(engine)
        async with sessionmaker() as session:
            await session.execute(update(Case).values(closed_on=Case.closed_on - timedelta(days=60)))
            await session.commit()
        context = AppContext.build(settings, sessionmaker, key_derivation=TEST_KEY_DERIVATION)
        assert (await purge_expired_cases(context))["purged"] == 1
    finally:
        await engine.dispose()
    today = organisation_date(utc_now(), settings.zone).isoformat()

    shown = server.ok("cases", "show", desk.case_id, "--key", str(triage.key_path), officer=triage)
    assert f"case {desk.case_id}  state closed" in shown and "resolution duplicate" in shown
    assert f"content deleted by retention on {today}" in shown and desk.marker not in shown
    document = json.loads(
        server.ok("cases", "show", desk.case_id, "--key", str(triage.key_path), "--json", officer=triage)
    )
    assert (document["purged_on"], document["report"], document["messages"]) == (today, None, [])
    assert "purged" in server.ok("cases", "list", officer=triage)

    reply = server.cli("cases", "reply", desk.case_id, "--key", str(triage.key_path), token=triage.token, input="hello\n")
    assert reply.exit_code == 1
    assert f"the content of case {desk.case_id} was deleted by retention on {today}" in reply.stderr
