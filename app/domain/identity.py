"""Confidential identity: who may learn a reporter's identity, and how.

A request for an identity moves through these states:

    pending ──reporter consents──▶ consented ──custodian releases──▶ released
       │  ▲                            │
       │  └──reporter changes mind─────┘  (consent may be taken back until release)
       ├──reporter declines──▶ declined
       │                                released ──requester: the key does not open──▶ consented or approved
       │
    pending or declined ──supervisor approves on a legal ground──▶ approved ──custodian releases──▶ released

    any state before `released` ──withdraw (requester or a supervisor)──▶ withdrawn

Release always takes two people besides the reporter's say: the requester and a custodian
(consent), or the requester, a supervisor and a custodian (legal obligation), all different
accounts. `check_*` raise the domain's errors; storage and HTTP live elsewhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import Conflict, Forbidden
from app.domain.staff import Role


class RequestStatus(StrEnum):
    PENDING = "pending"
    DECLINED = "declined"
    CONSENTED = "consented"
    APPROVED = "approved"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"


class ReporterAnswer(StrEnum):
    CONSENT = "consent"
    DECLINE = "decline"


class ReleaseBasis(StrEnum):
    CONSENT = "consent"
    LEGAL_OBLIGATION = "legal_obligation"


OPEN_STATUSES = frozenset({RequestStatus.PENDING, RequestStatus.DECLINED, RequestStatus.CONSENTED, RequestStatus.APPROVED})
RELEASABLE = {RequestStatus.CONSENTED: ReleaseBasis.CONSENT, RequestStatus.APPROVED: ReleaseBasis.LEGAL_OBLIGATION}
# Only a supervisor weighs a legal obligation to disclose; any role that reads cases may ask.
APPROVER_ROLES = frozenset({Role.SUPERVISOR})
# A drill coordinator plays no part in real cases, so cannot hold other people's identities;
# nor can an administrator, who creates accounts and so could fill the other parts of a
# release with accounts of their own.
CUSTODIAN_ROLES = frozenset(role for role in Role if role not in (Role.DRILL_COORDINATOR, Role.ADMIN))

REASON_MIN = 20
REASON_MAX = 4000


class IdentityConflict(Conflict):
    slug = "identity-request-conflict"
    title = "The identity request is not in a state that allows this"


class SamePerson(Forbidden):
    slug = "identity-same-person"
    title = "One person cannot take two parts in releasing an identity"


def after_reporter_answer(notice: ReporterNotice, status: RequestStatus, answer: ReporterAnswer) -> RequestStatus:
    """The status once the reporter answered. `notice` is what the reporter was shown: an
    answer to a request decided on a legal ground they are not yet told of is kept but
    changes nothing, since refusing it would tell them."""
    if notice.status in (RequestStatus.RELEASED, RequestStatus.WITHDRAWN):
        raise IdentityConflict(f"This request is {notice.status.value}; there is nothing left to answer.")
    if notice.told_of_legal_decision:
        raise IdentityConflict("This request was decided on a legal ground; your answer no longer changes it.")
    if status in (RequestStatus.PENDING, RequestStatus.DECLINED, RequestStatus.CONSENTED):
        return RequestStatus.CONSENTED if answer is ReporterAnswer.CONSENT else RequestStatus.DECLINED
    return status


def check_approval(status: RequestStatus, role: Role, approver_id: uuid.UUID, requester_id: uuid.UUID) -> None:
    if role not in APPROVER_ROLES:
        raise Forbidden("Only a supervisor may approve disclosing an identity on a legal ground.")
    if approver_id == requester_id:
        raise SamePerson("You made this request; another supervisor must weigh it.")
    if status not in (RequestStatus.PENDING, RequestStatus.DECLINED):
        raise IdentityConflict(
            f"This request is {status.value}; only a pending or declined request can be approved on a legal ground."
        )


def check_release(
    status: RequestStatus,
    custodian_id: uuid.UUID,
    *,
    is_custodian: bool,
    requester_id: uuid.UUID,
    approver_id: uuid.UUID | None,
) -> ReleaseBasis:
    """Whether this custodian may release now, and on which basis."""
    if not is_custodian:
        raise Forbidden("Only an identity custodian may release an identity.")
    if custodian_id == requester_id:
        raise SamePerson("You made this request; another custodian must release it.")
    if custodian_id == approver_id:
        raise SamePerson("You approved this request; another custodian must release it.")
    basis = RELEASABLE.get(status)
    if basis is None:
        raise IdentityConflict(
            f"This request is {status.value}; an identity is released only after the reporter consents "
            "or a supervisor approves on a legal ground."
        )
    return basis


def check_unopenable(status: RequestStatus, actor_id: uuid.UUID, requester_id: uuid.UUID, basis: ReleaseBasis | None) -> RequestStatus:
    """The requester says the key released to them does not open the identity (a wrong or
    garbled re-seal): the request goes back to what it was before the release, so that a
    custodian can release it again. The status it returns to."""
    if actor_id != requester_id:
        raise Forbidden("Only the requester can say that the identity released to them does not open.")
    if status is not RequestStatus.RELEASED or basis is None:
        raise IdentityConflict(f"This request is {status.value}; only a released one can be sent back.")
    return RequestStatus.CONSENTED if basis is ReleaseBasis.CONSENT else RequestStatus.APPROVED


def check_withdrawal(status: RequestStatus, role: Role, actor_id: uuid.UUID, requester_id: uuid.UUID) -> None:
    if actor_id != requester_id and role is not Role.SUPERVISOR:
        raise Forbidden("Only the requester or a supervisor may withdraw an identity request.")
    if status not in OPEN_STATUSES:
        raise IdentityConflict(f"This request is {status.value}; it can no longer be withdrawn.")


@dataclass(frozen=True)
class ReporterNotice:
    """What the reporter is shown of a request: the legal decision only once they may be told."""

    status: RequestStatus
    told_of_legal_decision: bool


def reporter_notice(status: RequestStatus, answer: ReporterAnswer | None, basis: ReleaseBasis | None, notice_withheld: bool) -> ReporterNotice:
    legal = status is RequestStatus.APPROVED or basis is ReleaseBasis.LEGAL_OBLIGATION
    if legal and notice_withheld:
        # The request as it stood before the decision: what they answered, if anything.
        if answer is None:
            return ReporterNotice(RequestStatus.PENDING, False)
        return ReporterNotice(
            RequestStatus.CONSENTED if answer is ReporterAnswer.CONSENT else RequestStatus.DECLINED, False
        )
    return ReporterNotice(status, legal)
