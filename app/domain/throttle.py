"""How long an account stays locked after consecutive failed logins.

Pure policy: the state (failure count, lock expiry) lives on the account row in
PostgreSQL so that every replica applies the same lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LoginThrottlePolicy:
    free_attempts: int = 5
    base_lockout_seconds: int = 30
    max_lockout_seconds: int = 15 * 60
    # Failures older than this are forgotten, so last week's typos do not shorten today's
    # free attempts.
    failure_memory_seconds: int = 60 * 60

    def recent_failures(self, count: int, last_failure_at: datetime | None, now: datetime) -> int:
        if last_failure_at is None or now - last_failure_at > timedelta(seconds=self.failure_memory_seconds):
            return 0
        return count

    def lockout_after(self, consecutive_failures: int) -> timedelta | None:
        """The lock that starts after this many consecutive failures, if any.

        The first lock comes at `free_attempts` failures; each further failure doubles it,
        up to the cap, so a guesser gets a handful of tries per quarter hour while a staff
        member who mistypes a few times is barely slowed.
        """
        if consecutive_failures < self.free_attempts:
            return None
        doublings = min(consecutive_failures - self.free_attempts, 32)
        seconds = min(self.base_lockout_seconds * 2**doublings, self.max_lockout_seconds)
        return timedelta(seconds=seconds)

    def locked_until(self, consecutive_failures: int, now: datetime) -> datetime | None:
        lockout = self.lockout_after(consecutive_failures)
        return None if lockout is None else now + lockout
