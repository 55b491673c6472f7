"""Every periodic job, its default schedule (UTC cron) and what it does.

Each job is idempotent and safe when two workers start it at once; docs/jobs.md says why
for each one.
"""

from __future__ import annotations

from app.audit.housekeeping import verify_audit_chain
from app.cases.reminders import send_deadline_notices
from app.cases.retention import purge_expired_cases
from app.drills.housekeeping import purge_finished_campaigns
from app.jobs.cleanup import cleanup_expired
from app.jobs.registry import PeriodicJob
from app.notifications.delivery import deliver_notifications

JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "notifications.deliver",
        "* * * * *",
        "Turn due outbox events into e-mails and webhook calls and send them, with retries.",
        deliver_notifications,
    ),
    PeriodicJob(
        "retention.purge",
        "35 * * * *",
        "Delete the content of real closed cases kept as long as settings.retention says (docs/retention.md).",
        purge_expired_cases,
    ),
    PeriodicJob(
        "deadlines.remind",
        # Hourly: a deadline passes at the organisation's midnight, whatever its zone, and
        # the next run catches it within the hour.
        "5 * * * *",
        "Remind whoever must act before a case's deadline; escalate to supervisors after it.",
        send_deadline_notices,
    ),
    PeriodicJob(
        "drills.purge",
        "15 * * * *",
        "Close drill campaigns left open long after their end (scorecard frozen, cases purged).",
        purge_finished_campaigns,
    ),
    PeriodicJob(
        "cleanup.expired",
        "*/15 * * * *",
        "Remove retry data, ended budget windows, abandoned uploads, ended tokens and old sent notices; "
        "write ended audit hours.",
        cleanup_expired,
    ),
    PeriodicJob(
        "audit.verify",
        "30 3 * * *",
        "Recompute the audit chain; tell administrators and auditors if it does not verify.",
        verify_audit_chain,
    ),
)

BY_NAME = {job.name: job for job in JOBS}
