from __future__ import annotations

import pytest

from app.domain.staff import Role
from tests.identity.helpers import Office


@pytest.fixture
async def office(client, sessionmaker, staff) -> Office:
    """Custodians and staff in place before any report arrives (intake seals to them)."""
    office = Office(client, sessionmaker, staff)
    await office.hire("triage", Role.TRIAGE)
    await office.hire("investigator", Role.INVESTIGATOR)
    await office.hire("supervisor", Role.SUPERVISOR)
    await office.hire("supervisor2", Role.SUPERVISOR)
    await office.hire("custodian", Role.AUDITOR, custodian=True)
    await office.hire("custodian2", Role.AUDITOR, custodian=True)
    return office
