"""Where an account's notices go: set and cleared by an administrator, audited without
the address itself."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.domain.staff import Role


async def test_an_admin_sets_and_clears_an_accounts_address(client, staff, sessionmaker) -> None:
    admin = await staff.headers_for(Role.ADMIN)
    investigator = await staff.create(Role.INVESTIGATOR)

    set_ = await client.put(
        f"/api/v1/users/{investigator.id}/email", json={"email": "Kim@Agency.Example"}, headers=admin
    )
    assert set_.status_code == 200, set_.text
    assert set_.json()["email"] == "Kim@agency.example"
    listed = await client.get("/api/v1/users", headers=admin)
    assert {user["username"]: user["email"] for user in listed.json()}[investigator.username] == "Kim@agency.example"

    cleared = await client.put(f"/api/v1/users/{investigator.id}/email", json={"email": None}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["email"] is None

    async with sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action.like("user.email%")))).all()
    assert [entry.action for entry in entries] == ["user.email_set", "user.email_cleared"]
    assert all("agency" not in str(entry.details).lower() for entry in entries)


async def test_a_bad_address_or_a_non_admin_changes_nothing(client, staff) -> None:
    admin = await staff.headers_for(Role.ADMIN)
    supervisor = await staff.headers_for(Role.SUPERVISOR)
    target = await staff.create(Role.TRIAGE)
    for address in ("no-at-sign.example", "two@@example.org", "spaces in@example.org", "x@localhost", "a" * 400 + "@e.org"):
        refused = await client.put(f"/api/v1/users/{target.id}/email", json={"email": address}, headers=admin)
        assert refused.status_code == 422, (address, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    forbidden = await client.put(f"/api/v1/users/{target.id}/email", json={"email": "t@agency.example"}, headers=supervisor)
    assert forbidden.status_code == 403
    missing = await client.put(f"/api/v1/users/{uuid.uuid4()}/email", json={"email": "t@agency.example"}, headers=admin)
    assert missing.status_code == 404
    listed = await client.get("/api/v1/users", headers=admin)
    assert {user["username"]: user["email"] for user in listed.json()}[target.username] is None
