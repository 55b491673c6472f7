"""An office for identity tests: a triage officer, custodians, supervisors and an
investigator, each with a registered key, and an identified report in their queue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select, update

from app.db.session import SessionMaker
from app.domain import crypto
from app.domain.staff import Role
from app.cases.models import Case
from app.staff.models import StaffUser
from tests.cases.helpers import register_key
from tests.conftest import StaffFactory
from tests.intake.helpers import report_body, reporter_headers, submit_ok

CONTACT = {"name": "김제보", "department": "도시계획과", "email": "whistle@example.kr", "phone": "010-1234-5678"}
REASON = "We need to interview the reporter about the documents they mention."
LEGAL_GROUND = "Court order 2026-GA-1234 under the Criminal Procedure Act, art. 106."


@dataclass
class Member:
    user: StaffUser
    headers: dict[str, str]
    key: crypto.PrivateKey

    @property
    def username(self) -> str:
        return self.user.username


@dataclass
class Office:
    client: httpx.AsyncClient
    sessionmaker: SessionMaker
    staff: StaffFactory
    members: dict[str, Member] = field(default_factory=dict)

    async def hire(self, name: str, role: Role, *, custodian: bool = False) -> Member:
        user = await self.staff.create(role)
        if custodian:
            await set_custodian(self.sessionmaker, user.id)
        headers = {"Authorization": f"Bearer {await self.staff.token_for(user)}"}
        member = Member(user, headers, await register_key(self.client, headers))
        self.members[name] = member
        return member

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    async def file_identified_report(self, marker: str = "", contact: dict[str, Any] | None = None) -> tuple[str, uuid.UUID]:
        """An employee's report with a contact; returns its receipt and case id."""
        before = await self._case_ids()
        receipt = await submit_ok(self.client, report_body(marker, channel="employee", contact=contact or CONTACT))
        (case_id,) = await self._case_ids() - before
        return receipt, case_id

    async def _case_ids(self) -> set[uuid.UUID]:
        async with self.sessionmaker() as session:
            return set(await session.scalars(select(Case.id)))

    async def assign_and_grant(self, case_id: uuid.UUID, investigator: str = "investigator") -> None:
        """Triage takes the case to `investigating` with the investigator, and grants them the key."""
        triage = self["triage"]
        version = (await self.client.get(f"/api/v1/cases/{case_id}", headers=triage.headers)).json()["version"]
        for action, fields in (("acknowledge", {}), ("start_assessment", {}), ("accept", {"assignee": self[investigator].username})):
            answer = await self.client.post(
                f"/api/v1/cases/{case_id}/transitions",
                json={"action": action, "expected_version": version, **fields},
                headers=triage.headers,
            )
            assert answer.status_code == 200, answer.text
            version = answer.json()["version"]
        await self.grant(case_id, investigator)

    async def grant(self, case_id: uuid.UUID, to: str, by: str = "triage") -> None:
        giver = self[by]
        case = (await self.client.get(f"/api/v1/cases/{case_id}", headers=giver.headers)).json()
        content_key = crypto.open_content_key(
            crypto.b64url_decode(case["content_key"]["sealed_key"]), giver.key, case_id
        )
        grantee = self[to]
        answer = await self.client.post(
            f"/api/v1/cases/{case_id}/grants",
            json={
                "grantee": grantee.username,
                "fingerprint": grantee.key.public_key.fingerprint,
                "sealed_key": crypto.b64url_encode(crypto.seal_content_key(content_key, grantee.key.public_key, case_id)),
            },
            headers=giver.headers,
        )
        assert answer.status_code == 201, answer.text

    async def ask(self, case_id: uuid.UUID, who: str, reason: str = REASON) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/cases/{case_id}/identity-requests", json={"reason": reason}, headers=self[who].headers
        )

    async def approve(self, request_id: str, who: str, *, withhold: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"legal_ground": LEGAL_GROUND}
        if withhold is not None:
            body["withhold_notice_because"] = withhold
        return await self.client.post(f"/api/v1/identity-requests/{request_id}/approve", json=body, headers=self[who].headers)

    async def release(self, request_id: str, who: str) -> httpx.Response:
        """What a custodian's client does: fetch the key sealed to them, re-seal it to the requester."""
        custodian = self[who]
        material = await self.client.get(f"/api/v1/identity-requests/{request_id}/release-material", headers=custodian.headers)
        if material.status_code != 200:
            # Refused: try the release anyway with a key of the right shape, as an attacker's client would.
            return await self.client.post(
                f"/api/v1/identity-requests/{request_id}/release",
                json={"fingerprint": "0" * 39, "sealed_key": crypto.b64url_encode(bytes(crypto.SEALED_IDENTITY_KEY_BYTES))},
                headers=custodian.headers,
            )
        work = material.json()
        case_id = uuid.UUID(work["request"]["case_id"])
        identity_key = crypto.open_identity_key(
            crypto.b64url_decode(work["custodian_key"]["sealed_key"]), custodian.key, case_id
        )
        requester = crypto.PublicKey.from_text(work["requester_public_key"])
        return await self.client.post(
            f"/api/v1/identity-requests/{request_id}/release",
            json={
                "fingerprint": requester.fingerprint,
                "sealed_key": crypto.b64url_encode(crypto.seal_identity_key(identity_key, requester, case_id)),
            },
            headers=custodian.headers,
        )

    async def read_identity(self, case_id: uuid.UUID, who: str) -> dict[str, Any]:
        member = self[who]
        answer = await self.client.get(f"/api/v1/cases/{case_id}/identity", headers=member.headers)
        assert answer.status_code == 200, answer.text
        released = answer.json()
        identity_key = crypto.open_identity_key(
            crypto.b64url_decode(released["identity_key"]["sealed_key"]), member.key, case_id
        )
        return crypto.open_identity(identity_key, crypto.b64url_decode(released["sealed_identity"]), case_id)


async def set_custodian(sessionmaker: SessionMaker, user_id: uuid.UUID, on: bool = True) -> None:
    async with sessionmaker() as session:
        await session.execute(update(StaffUser).where(StaffUser.id == user_id).values(is_identity_custodian=on))
        await session.commit()


async def answer_as_reporter(client: httpx.AsyncClient, receipt: str, request_id: str, answer: str) -> httpx.Response:
    headers = await reporter_headers(client, receipt)
    return await client.post(f"/api/v1/reporter/identity-requests/{request_id}", json={"answer": answer}, headers=headers)


async def mailbox(client: httpx.AsyncClient, receipt: str) -> dict[str, Any]:
    answer = await client.get("/api/v1/reporter/report", headers=await reporter_headers(client, receipt))
    assert answer.status_code == 200, answer.text
    return answer.json()
