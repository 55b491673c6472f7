"""Schemathesis fuzzes every operation of `/openapi.json`, positive and negative data,
as four callers: anonymous, an admin, a triage officer with a registered key, and a
reporter with a session. Every answer must be no server error, a documented status, of a
documented content type, and match its documented schema.

The callers, a report routed to the triage officer and an attachment are made once per
module, committed in a database of the module's own; each test runs inside a transaction
rolled back at its end, so what one operation's fuzzing writes no other sees. Known ids
are mixed into the generated paths so that the fuzzer reaches real cases, not only 404s.
Proof of work stays at the suite's 8 bits: the fuzzer never solves it, and its 422 is
documented.
"""

from __future__ import annotations

import dataclasses

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.domain.crypto import PrivateKey
from app.domain.staff import PasswordHashing, Role
from app.main import create_app
from app.settings import Settings
from app.staff.models import StaffUser
from tests.conftest import (
    STRONG_PASSWORD,
    TEST_POW_DIFFICULTY,
    TEST_SECRET_KEY,
    _admin,
    clone_database,
    database_url_named,
)
from tests.intake.helpers import report_body, reporter_headers, submit_ok

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CALLERS = ["anonymous", "admin", "triage", "reporter"]
BASE_URL = "http://testserver"
# Raise for a thorough run: FUZZ_MAX_EXAMPLES=200 .venv/bin/pytest tests/test_openapi_fuzz.py
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())
OPERATIONS = {operation.label: operation for operation in (result.ok() for result in SCHEMA.get_all_operations())}
REQUEST_FIELDS = {"method", "url", "headers", "files", "data", "params", "auth", "cookies", "json"}


@dataclass
class World:
    app: FastAPI
    engine: AsyncEngine
    headers: dict[str, dict[str, str]]
    known: dict[str, str]
    strategies: dict[str, st.SearchStrategy] = field(default_factory=dict)

    def cases_for(self, label: str) -> st.SearchStrategy:
        if label not in self.strategies:
            self.strategies[label] = cases_for(OPERATIONS[label], self.known)
        return self.strategies[label]


def fuzz_settings(recovery_key: PrivateKey, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        environment="production",
        secret_key=TEST_SECRET_KEY,
        DATABASE_URL=database_url,
        RECOVERY_PUBLIC_KEY=recovery_key.public_key.to_text(),
        POW_DIFFICULTY=TEST_POW_DIFFICULTY,
    )


@pytest.fixture(scope="module")
async def world(
    postgres_server_url: str, template_database: str, recovery_key: PrivateKey, password_hashing: PasswordHashing
) -> AsyncIterator[World]:
    name = await clone_database(postgres_server_url, template_database)
    url = database_url_named(postgres_server_url, name)
    settings = fuzz_settings(recovery_key, url)
    engine = create_async_engine(url)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    app = create_app(settings, sessionmaker=sessionmaker)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        headers = {"anonymous": {}}
        users = {}
        for role in (Role.ADMIN, Role.TRIAGE):
            async with sessionmaker() as session:
                user = StaffUser(
                    username=f"fuzz-{role.value}", role=role.value, password_hash=password_hashing.hash(STRONG_PASSWORD)
                )
                session.add(user)
                await session.commit()
            users[role.value] = user
            token = await client.post(
                "/api/v1/auth/token", data={"username": user.username, "password": STRONG_PASSWORD}
            )
            headers[role.value] = {"Authorization": f"Bearer {token.json()['access_token']}"}
        registered = await client.put(
            "/api/v1/users/me/public-key",
            json={"public_key": PrivateKey.generate().public_key.to_text()},
            headers=headers["triage"],
        )
        assert registered.status_code == 200, registered.text
        headers["reporter"] = await reporter_headers(client, await submit_ok(client, report_body("FUZZ")))
        attachment = await client.post(
            "/api/v1/reporter/attachments",
            files={"file": ("note.txt", b"what I saw", "text/plain")},
            headers=headers["reporter"],
        )
        assert attachment.status_code == 201, attachment.text
        case = (await client.get("/api/v1/cases", headers=headers["triage"])).json()["items"][0]
    known = {
        "case_id": str(case["id"]),
        "attachment_id": str(attachment.json()["id"]),
        "user_id": str(users["triage"].id),
        "username": users["triage"].username,
    }
    yield World(app, engine, headers, known)
    await engine.dispose()
    await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def fuzz_client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with world.engine.connect() as connection:
        transaction = await connection.begin()
        sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        # One app for the module (building one costs an Argon2 evaluation), pointed at
        # this test's transaction.
        world.app.state.context = dataclasses.replace(world.app.state.context, sessionmaker=sessionmaker)
        transport = httpx.ASGITransport(app=world.app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                yield client
        finally:
            await transaction.rollback()


def cases_for(operation, known: dict[str, str]) -> st.SearchStrategy:
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    names = {parameter.name for parameter in operation.path_parameters}
    if names and names <= known.keys():
        strategies.append(operation.as_strategy(path_parameters={name: known[name] for name in names}))
    return st.one_of(strategies)


async def send(client: httpx.AsyncClient, case, headers: dict[str, str]) -> tuple[httpx.Response, dict]:
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    # requests builds the body exactly as schemathesis means it (multipart, form, JSON);
    # httpx then sends those bytes to the app in this event loop.
    prepared = requests.Request(**{key: kwargs[key] for key in REQUEST_FIELDS & kwargs.keys()}).prepare()
    response = await client.request(
        prepared.method, prepared.url, headers=dict(prepared.headers), content=prepared.body
    )
    return response, kwargs


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("label", sorted(OPERATIONS))
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # The client and its transaction are shared by a test's examples on purpose; schemas
    # (a report, a key) make large and slow examples, slower still on a loaded machine.
    suppress_health_check=[
        hypothesis.HealthCheck.function_scoped_fixture,
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.filter_too_much,
        hypothesis.HealthCheck.data_too_large,
        hypothesis.HealthCheck.large_base_example,
    ],
)
@hypothesis.given(data=st.data())
async def test_every_answer_is_documented(
    fuzz_client: httpx.AsyncClient, world: World, label: str, caller: str, data: st.DataObject
) -> None:
    case = data.draw(world.cases_for(label))
    response, kwargs = await send(fuzz_client, case, world.headers[caller])
    case.validate_response(response, checks=CHECKS, headers=kwargs["headers"], transport_kwargs=kwargs)


async def test_the_fuzzed_operations_are_those_the_service_serves(world: World) -> None:
    served = world.app.openapi()["paths"]
    assert set(OPERATIONS) == {f"{method.upper()} {path}" for path, item in served.items() for method in item}
