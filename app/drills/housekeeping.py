"""The `drills.purge` job: drill campaigns left open long after their window ended are
closed as their coordinator's close would close them, and a closed campaign that still
holds drill cases has them purged.

A coordinator normally closes a campaign once its scorecard is read; one who forgets
would leave a blind drill's cases in the real queue for good. The close is the
coordinator's own code path (`DrillService`), taken by no one. Each campaign is closed or
purged in a transaction of its own, under its row lock taken with SKIP LOCKED: two
workers (or a worker and the coordinator) never both close one, and a crash loses only
the campaign under way, which the next run finds still open.
"""

from __future__ import annotations

from datetime import timedelta

from app.context import AppContext
from app.db.session import own_transaction
from app.drills.service import DrillService
from app.jobs.registry import JobResult

# Campaigns are few; the bound only keeps a run finite whatever happens.
MAX_CAMPAIGNS_PER_RUN = 100


async def purge_finished_campaigns(context: AppContext) -> JobResult:
    """Close every campaign whose window ended more than `drills.close_after_days` ago,
    then purge any closed campaign's leftover drill cases."""
    now = context.clock()
    ended_before = now - timedelta(days=context.settings.drills.close_after_days)
    closed = purged = leftovers_purged = 0
    for _ in range(MAX_CAMPAIGNS_PER_RUN):
        async with own_transaction(context.sessionmaker) as session:
            campaign = await DrillService(session, context).close_next_ended(ended_before, now)
        if campaign is None:
            break
        closed += 1
        purged += campaign.purged_cases or 0
    for _ in range(MAX_CAMPAIGNS_PER_RUN):
        async with own_transaction(context.sessionmaker) as session:
            leftover = await DrillService(session, context).purge_next_leftover(now)
        if leftover is None:
            break
        leftovers_purged += leftover[1]
    return {"campaigns_closed": closed, "cases_purged": purged, "leftover_cases_purged": leftovers_purged}
