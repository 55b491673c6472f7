"""The campaign life cycle and drill secrets, as pure rules.

The table is written out again here as plain data, not imported: a wrong table in the app
must disagree with this one."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from app.domain import drills
from app.domain.drills import CampaignAction, CampaignActionNotAllowed, CampaignState, Window
from app.domain.errors import InvalidInput

# (state, action) -> next state; a pair missing here is refused.
TABLE = {
    ("scheduled", "start"): "running",
    ("scheduled", "pause"): "paused",
    ("running", "pause"): "paused",
    ("paused", "resume"): "running",
    ("scheduled", "close"): "closed",
    ("running", "close"): "closed",
    ("paused", "close"): "closed",
}
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(hours=1), NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("state", "action"), list(itertools.product(list(CampaignState), list(CampaignAction)))
)
def test_every_state_and_action_pair_follows_the_table(state: CampaignState, action: CampaignAction) -> None:
    expected = TABLE.get((state.value, action.value))
    if expected is None:
        with pytest.raises(CampaignActionNotAllowed) as refused:
            drills.decide(state, action)
        allowed = [a for a in ("pause", "resume", "close") if (state.value, a) in TABLE]
        assert refused.value.extensions["allowed_actions"] == allowed
        assert refused.value.status == 409
    else:
        assert drills.decide(state, action).value == expected


def test_the_database_check_lists_exactly_the_table() -> None:
    steps = {(a.value, f.value, t.value) for a, f, t in drills.allowed_steps()}
    assert steps == {(action, source, target) for (source, action), target in TABLE.items()}


def test_coordinators_are_offered_only_their_own_actions() -> None:
    assert drills.allowed_actions(CampaignState.SCHEDULED) == [CampaignAction.PAUSE, CampaignAction.CLOSE]
    assert drills.allowed_actions(CampaignState.PAUSED) == [CampaignAction.RESUME, CampaignAction.CLOSE]
    assert drills.allowed_actions(CampaignState.CLOSED) == []
    assert CampaignAction.START not in drills.COORDINATOR_ACTIONS


def test_the_clock_starts_a_scheduled_campaign_when_its_window_opens() -> None:
    later = Window(NOW + timedelta(hours=1), NOW + timedelta(days=1))
    assert drills.catch_up(CampaignState.SCHEDULED, later, NOW) is None
    assert drills.current_state(CampaignState.SCHEDULED, later, NOW) is CampaignState.SCHEDULED
    assert drills.catch_up(CampaignState.SCHEDULED, WINDOW, NOW) is CampaignAction.START
    assert drills.current_state(CampaignState.SCHEDULED, WINDOW, NOW) is CampaignState.RUNNING
    for state in (CampaignState.RUNNING, CampaignState.PAUSED, CampaignState.CLOSED):
        assert drills.catch_up(state, WINDOW, NOW) is None


@pytest.mark.parametrize(
    ("state", "moment", "accepts"),
    [
        (CampaignState.RUNNING, NOW, True),
        (CampaignState.SCHEDULED, NOW, True),  # the clock owes it its start
        (CampaignState.PAUSED, NOW, False),
        (CampaignState.CLOSED, NOW, False),
        (CampaignState.RUNNING, WINDOW.starts_at - timedelta(seconds=1), False),
        (CampaignState.RUNNING, WINDOW.starts_at, True),
        (CampaignState.RUNNING, WINDOW.ends_at, False),  # the window is half-open
        (CampaignState.RUNNING, WINDOW.ends_at - timedelta(microseconds=1), True),
    ],
)
def test_only_a_running_campaign_inside_its_window_takes_reports(state, moment, accepts) -> None:
    assert drills.accepts_reports(state, WINDOW, moment) is accepts


def test_a_window_must_be_zoned_and_end_after_it_starts() -> None:
    with pytest.raises(InvalidInput):
        Window(NOW, NOW)
    with pytest.raises(InvalidInput):
        Window(NOW.replace(tzinfo=None), NOW.replace(tzinfo=None) + timedelta(days=1))


def test_participant_codes_are_typeable_and_carry_at_least_forty_bits() -> None:
    code = drills.new_participant_code()
    assert len(code) == 14 and code[4] == code[9] == "-"
    assert drills.CODE_BITS == len(code.replace("-", "")) * math.log2(32) >= 40
    assert set(code.replace("-", "")) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert len({drills.new_participant_code() for _ in range(2000)}) == 2000


def test_codes_are_read_the_way_people_type_them() -> None:
    code = drills.new_participant_code()
    canonical = code.replace("-", "")
    assert drills.normalise(code) == canonical
    assert drills.normalise(" " + code.lower().replace("-", " ") + " ") == canonical
    assert drills.normalise("O0IL-1111-2222") == "0011" + "11112222"
    assert drills.normalise("ABCD-EFGH-JKM") is None  # one symbol short
    assert drills.normalise("ABCD-EFGH-JKMU") is None  # U is not in the alphabet
    assert drills.normalise("") is None


def test_tokens_and_codes_are_kept_apart_and_stored_as_keyed_digests() -> None:
    token, code = drills.new_injection_token(), drills.new_participant_code()
    assert drills.TOKEN_BITS >= 128
    assert drills.kind_of(drills.normalise(token)) is drills.SecretKind.TOKEN
    assert drills.kind_of(drills.normalise(code)) is drills.SecretKind.CODE
    key, other_key = b"k" * 32, b"o" * 32
    digest = drills.secret_digest(key, drills.normalise(code))
    assert len(digest) == 32 and drills.normalise(code).encode() not in digest
    assert digest != drills.secret_digest(other_key, drills.normalise(code))


def test_scenarios_are_handed_out_round_robin_across_batches() -> None:
    assert drills.assign_scenarios(0, 5, 3) == [1, 2, 3, 1, 2]
    assert drills.assign_scenarios(5, 4, 3) == [3, 1, 2, 3]
