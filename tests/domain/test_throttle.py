from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.domain.throttle import LoginThrottlePolicy

POLICY = LoginThrottlePolicy(free_attempts=5, base_lockout_seconds=30, max_lockout_seconds=900)


def test_no_lock_before_the_free_attempts_are_used() -> None:
    assert [POLICY.lockout_after(n) for n in range(5)] == [None] * 5


def test_the_lock_doubles_with_each_further_failure_up_to_the_cap() -> None:
    seconds = [POLICY.lockout_after(n).total_seconds() for n in range(5, 12)]
    assert seconds == [30, 60, 120, 240, 480, 900, 900]


@given(st.integers(min_value=0, max_value=10**9))
def test_the_lock_never_exceeds_the_cap_and_never_shrinks(failures: int) -> None:
    current = POLICY.lockout_after(failures) or timedelta(0)
    following = POLICY.lockout_after(failures + 1) or timedelta(0)
    assert current <= following <= timedelta(seconds=POLICY.max_lockout_seconds)


def test_locked_until_is_measured_from_now() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert POLICY.locked_until(4, now) is None
    assert POLICY.locked_until(5, now) == now + timedelta(seconds=30)
