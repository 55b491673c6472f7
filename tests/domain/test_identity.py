"""The pure rules of confidential identity, over every status, role and answer.

The expected tables are written out here rather than derived from `RELEASABLE` or
`OPEN_STATUSES`, so that a mistake in those would show."""

from __future__ import annotations

import itertools
import uuid

import pytest

from app.domain.errors import Conflict, Forbidden
from app.domain.identity import (
    IdentityConflict,
    ReleaseBasis,
    ReporterAnswer,
    ReporterNotice,
    RequestStatus,
    SamePerson,
    after_reporter_answer,
    check_approval,
    check_release,
    check_withdrawal,
    reporter_notice,
)
from app.domain.staff import Role

S = RequestStatus
A = ReporterAnswer
REQUESTER, APPROVER, CUSTODIAN, OTHER = (uuid.uuid4() for _ in range(4))


def test_the_error_types_the_api_names() -> None:
    assert SamePerson.slug == "identity-same-person" and issubclass(SamePerson, Forbidden)
    assert IdentityConflict.slug == "identity-request-conflict" and issubclass(
        IdentityConflict, Conflict
    )


# --- the reporter's answer ------------------------------------------------------------------

ANSWERABLE = [S.PENDING, S.DECLINED, S.CONSENTED]


@pytest.mark.parametrize(("status", "answer"), list(itertools.product(ANSWERABLE, A)))
def test_an_answer_to_an_undecided_request_sets_it(
    status: RequestStatus, answer: ReporterAnswer
) -> None:
    notice = ReporterNotice(status, told_of_legal_decision=False)
    expected = S.CONSENTED if answer is A.CONSENT else S.DECLINED
    assert after_reporter_answer(notice, status, answer) is expected


@pytest.mark.parametrize(
    ("status", "answer"), list(itertools.product([S.RELEASED, S.WITHDRAWN], A))
)
def test_nothing_is_left_to_answer_once_released_or_withdrawn(
    status: RequestStatus, answer: ReporterAnswer
) -> None:
    with pytest.raises(IdentityConflict, match=status.value):
        after_reporter_answer(ReporterNotice(status, told_of_legal_decision=False), status, answer)


@pytest.mark.parametrize(("status", "answer"), list(itertools.product([S.APPROVED, S.RELEASED], A)))
def test_a_reporter_told_of_a_legal_decision_cannot_change_it(
    status: RequestStatus, answer: ReporterAnswer
) -> None:
    shown = S.APPROVED if status is S.APPROVED else S.RELEASED
    notice = ReporterNotice(shown, told_of_legal_decision=True)
    with pytest.raises(IdentityConflict):
        after_reporter_answer(notice, status, answer)


@pytest.mark.parametrize(
    ("shown", "status", "answer"),
    list(itertools.product([S.PENDING, S.DECLINED, S.CONSENTED], [S.APPROVED, S.RELEASED], A)),
)
def test_an_answer_to_a_withheld_legal_decision_is_taken_and_changes_nothing(
    shown: RequestStatus, status: RequestStatus, answer: ReporterAnswer
) -> None:
    assert (
        after_reporter_answer(ReporterNotice(shown, told_of_legal_decision=False), status, answer)
        is status
    )


# --- approval ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.PENDING, S.DECLINED])
def test_another_supervisor_approves_a_pending_or_declined_request(status: RequestStatus) -> None:
    check_approval(status, Role.SUPERVISOR, APPROVER, REQUESTER)  # no error


@pytest.mark.parametrize("status", [S.CONSENTED, S.APPROVED, S.RELEASED, S.WITHDRAWN])
def test_nothing_else_is_approved(status: RequestStatus) -> None:
    with pytest.raises(IdentityConflict, match=status.value):
        check_approval(status, Role.SUPERVISOR, APPROVER, REQUESTER)


@pytest.mark.parametrize(
    ("role", "status"), list(itertools.product([r for r in Role if r is not Role.SUPERVISOR], S))
)
def test_only_a_supervisor_approves(role: Role, status: RequestStatus) -> None:
    with pytest.raises(Forbidden) as refused:
        check_approval(status, role, APPROVER, REQUESTER)
    assert not isinstance(refused.value, SamePerson)


@pytest.mark.parametrize("status", list(S))
def test_a_supervisor_never_approves_their_own_request(status: RequestStatus) -> None:
    with pytest.raises(SamePerson):
        check_approval(status, Role.SUPERVISOR, REQUESTER, REQUESTER)


# --- release ----------------------------------------------------------------------------------


def release(
    status: RequestStatus,
    custodian: uuid.UUID = CUSTODIAN,
    *,
    is_custodian: bool = True,
    approver=None,
):
    return check_release(
        status, custodian, is_custodian=is_custodian, requester_id=REQUESTER, approver_id=approver
    )


def test_a_consented_request_is_released_on_consent() -> None:
    assert release(S.CONSENTED) is ReleaseBasis.CONSENT


def test_an_approved_request_is_released_on_the_legal_obligation() -> None:
    assert release(S.APPROVED, approver=APPROVER) is ReleaseBasis.LEGAL_OBLIGATION


@pytest.mark.parametrize("status", [S.PENDING, S.DECLINED, S.RELEASED, S.WITHDRAWN])
def test_nothing_else_is_released(status: RequestStatus) -> None:
    with pytest.raises(IdentityConflict, match=status.value):
        release(status)
    with pytest.raises(IdentityConflict):
        release(status, approver=APPROVER)


@pytest.mark.parametrize("status", list(S))
def test_only_a_custodian_releases(status: RequestStatus) -> None:
    with pytest.raises(Forbidden) as refused:
        release(status, is_custodian=False, approver=APPROVER)
    assert not isinstance(refused.value, SamePerson)


@pytest.mark.parametrize(("status", "approver"), list(itertools.product(list(S), [None, APPROVER])))
def test_the_requester_never_releases_their_own_request(status: RequestStatus, approver) -> None:
    with pytest.raises(SamePerson, match="made this request"):
        release(status, REQUESTER, approver=approver)


@pytest.mark.parametrize("status", list(S))
def test_the_approver_never_releases_what_they_approved(status: RequestStatus) -> None:
    with pytest.raises(SamePerson, match="approved this request"):
        release(status, APPROVER, approver=APPROVER)


def test_one_person_in_all_three_parts_is_refused() -> None:
    """An approver equal to the requester cannot come from `check_approval`, but should a
    row hold it, releasing is still refused."""
    with pytest.raises(SamePerson):
        release(S.APPROVED, REQUESTER, approver=REQUESTER)


# --- withdrawal -------------------------------------------------------------------------------

OPEN = [S.PENDING, S.DECLINED, S.CONSENTED, S.APPROVED]


@pytest.mark.parametrize(("role", "status"), list(itertools.product(list(Role), OPEN)))
def test_the_requester_withdraws_an_open_request_whatever_their_role(
    role: Role, status: RequestStatus
) -> None:
    check_withdrawal(status, role, REQUESTER, REQUESTER)


@pytest.mark.parametrize("status", OPEN)
def test_any_supervisor_withdraws_an_open_request(status: RequestStatus) -> None:
    check_withdrawal(status, Role.SUPERVISOR, OTHER, REQUESTER)


@pytest.mark.parametrize(
    ("role", "status"), list(itertools.product([r for r in Role if r is not Role.SUPERVISOR], OPEN))
)
def test_nobody_else_withdraws(role: Role, status: RequestStatus) -> None:
    with pytest.raises(Forbidden):
        check_withdrawal(status, role, OTHER, REQUESTER)


@pytest.mark.parametrize(
    ("status", "actor"), list(itertools.product([S.RELEASED, S.WITHDRAWN], [REQUESTER, OTHER]))
)
def test_a_closed_request_is_not_withdrawn(status: RequestStatus, actor: uuid.UUID) -> None:
    with pytest.raises(IdentityConflict):
        check_withdrawal(status, Role.SUPERVISOR, actor, REQUESTER)


# --- what the reporter is shown ----------------------------------------------------------------

# (status, answer, basis) -> shown without withholding.
NOT_LEGAL = [
    (S.PENDING, None, None),
    (S.DECLINED, A.DECLINE, None),
    (S.CONSENTED, A.CONSENT, None),
    (S.WITHDRAWN, None, None),
    (S.WITHDRAWN, A.CONSENT, None),
    (S.RELEASED, A.CONSENT, ReleaseBasis.CONSENT),
]
LEGAL = [
    (S.APPROVED, None, None),
    (S.APPROVED, A.DECLINE, None),
    (S.APPROVED, A.CONSENT, None),
    (S.RELEASED, None, ReleaseBasis.LEGAL_OBLIGATION),
    (S.RELEASED, A.DECLINE, ReleaseBasis.LEGAL_OBLIGATION),
]


@pytest.mark.parametrize(("status", "answer", "basis"), NOT_LEGAL)
@pytest.mark.parametrize("withheld", [False, True])
def test_a_request_without_a_legal_decision_is_shown_as_it_is(
    status, answer, basis, withheld
) -> None:
    # Withholding applies to legal decisions only; the flag cannot hide anything else.
    assert reporter_notice(status, answer, basis, withheld) == ReporterNotice(status, False)


@pytest.mark.parametrize(("status", "answer", "basis"), LEGAL)
def test_a_legal_decision_is_shown_with_its_ground(status, answer, basis) -> None:
    assert reporter_notice(status, answer, basis, False) == ReporterNotice(status, True)


@pytest.mark.parametrize(
    ("status", "answer", "basis", "shown"),
    [
        (S.APPROVED, None, None, S.PENDING),
        (S.APPROVED, A.DECLINE, None, S.DECLINED),
        (S.APPROVED, A.CONSENT, None, S.CONSENTED),
        (S.RELEASED, None, ReleaseBasis.LEGAL_OBLIGATION, S.PENDING),
        (S.RELEASED, A.DECLINE, ReleaseBasis.LEGAL_OBLIGATION, S.DECLINED),
        (S.RELEASED, A.CONSENT, ReleaseBasis.LEGAL_OBLIGATION, S.CONSENTED),
    ],
)
def test_a_withheld_legal_decision_shows_the_request_as_it_stood_before(
    status, answer, basis, shown
) -> None:
    assert reporter_notice(status, answer, basis, True) == ReporterNotice(shown, False)


@pytest.mark.parametrize("answer", [None, A.CONSENT, A.DECLINE])
def test_withdrawing_an_approved_request_shows_withdrawn(answer) -> None:
    """A withdrawn request no longer carries the legal decision (`basis` is set only at
    release), so it reads as withdrawn even if the decision was withheld."""
    assert reporter_notice(S.WITHDRAWN, answer, None, True) == ReporterNotice(S.WITHDRAWN, False)
