"""A routed channel whose officers cannot receive its reports is named at startup."""

from __future__ import annotations

import logging
import secrets

import pytest

from app.db.session import SessionMaker
from app.domain.crypto import PrivateKey
from app.domain.intake import Channel
from app.domain.staff import Role
from app.main import create_app
from app.settings import Settings
from app.staff.models import StaffUser


async def _officer(sessionmaker: SessionMaker, role: Role, *, with_key: bool, active: bool = True) -> str:
    username = f"{role.value}-{secrets.token_hex(3)}"
    user = StaffUser(username=username, role=role.value, password_hash="unused", is_active=active)
    if with_key:
        public = PrivateKey.generate().public_key
        user.public_key, user.public_key_fingerprint = public.raw, public.fingerprint
    async with sessionmaker() as session:
        session.add(user)
        await session.commit()
    return username


def _routed(settings: Settings, routes: dict[Channel, list[str]]) -> Settings:
    return settings.model_copy(
        update={"intake": settings.intake.model_copy(update={"channel_recipients": routes})}
    )


async def _start(settings: Settings, sessionmaker: SessionMaker) -> None:
    app = create_app(settings, sessionmaker=sessionmaker)
    async with app.router.lifespan_context(app):
        pass


async def test_a_channel_routed_to_officers_without_keys_is_named_at_startup(
    settings: Settings, sessionmaker: SessionMaker, caplog: pytest.LogCaptureFixture
) -> None:
    ready = await _officer(sessionmaker, Role.TRIAGE, with_key=True)
    no_key = await _officer(sessionmaker, Role.TRIAGE, with_key=False)
    inactive = await _officer(sessionmaker, Role.TRIAGE, with_key=True, active=False)
    investigator = await _officer(sessionmaker, Role.INVESTIGATOR, with_key=True)
    routes = {
        Channel.EMPLOYEE: [no_key, inactive, investigator, "nobody-by-this-name"],
        Channel.CITIZEN: [ready, "nobody-either"],
    }
    with caplog.at_level(logging.WARNING, logger="cleanwindow.intake"):
        await _start(_routed(settings, routes), sessionmaker)

    warnings = {record.channel: record for record in caplog.records if record.name == "cleanwindow.intake"}
    assert set(warnings) == {"employee", "citizen"}
    employee = warnings["employee"]
    assert "recovery key only" in employee.getMessage()
    assert employee.officers_without_key == sorted([no_key, inactive, investigator, "nobody-by-this-name"])
    citizen = warnings["citizen"]
    assert "recovery key only" not in citizen.getMessage()
    assert citizen.officers_without_key == ["nobody-either"]


async def test_a_channel_whose_officers_all_have_keys_starts_quietly(
    settings: Settings, sessionmaker: SessionMaker, caplog: pytest.LogCaptureFixture
) -> None:
    ready = await _officer(sessionmaker, Role.TRIAGE, with_key=True)
    with caplog.at_level(logging.WARNING, logger="cleanwindow.intake"):
        await _start(_routed(settings, {Channel.EMPLOYEE: [ready]}), sessionmaker)
    assert [record for record in caplog.records if record.name == "cleanwindow.intake"] == []
