"""The service's own database role (app/db/privileges.py): granted by the owner, it runs
everything the service and the worker do, and cannot change the audit log or the schema.

Every test connects as a real role of its own (roles are cluster-wide: a unique name,
dropped at the end) to a database the owner migrated.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import make_url, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.cases.models import Case
from app.context import AppContext
from app.db.migrations import grant_database
from app.db.privileges import SERVICE_TABLE_PRIVILEGES, TABLE_EXCEPTIONS, RoleRefused
from app.db.session import build_engine, build_sessionmaker
from app.domain import pow
from app.domain.clock import utc_now
from app.domain.kdf import TEST_KEY_DERIVATION
from app.domain.staff import Role
from app.jobs.catalogue import JOBS
from app.jobs.runner import run_job
from app.jobs.worker import QUEUE, build_queue_app
from app.main import create_app
from app.settings import Settings
from tests.cases.helpers import days_ago, insert_campaign, insert_case, login, transition
from tests.conftest import STRONG_PASSWORD, StaffFactory, _admin
from tests.intake.helpers import reporter_headers, submit_ok
from tests.jobs.helpers import staged_upload, token
from tests.test_cli import run_cli
from tests.test_serve import free_port, stop, wait_until_ready

ALL_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
METRICS_TOKEN = "metrics-token-for-the-role-test"


@dataclass
class ServiceRole:
    """A LOGIN role with no password (trust authentication on the test server)."""

    name: str

    def url(self, database_url: str) -> str:
        """`database_url` as this role connects to it."""
        return make_url(database_url).set(username=self.name, password=None).render_as_string(hide_password=False)


@pytest.fixture
async def service_role(postgres_server_url: str) -> AsyncIterator[ServiceRole]:
    role = ServiceRole(f"cw_app_{secrets.token_hex(5)}")
    await _admin(postgres_server_url, f'CREATE ROLE "{role.name}" LOGIN')
    yield role
    # A role cannot be dropped while a database still holds a grant to it or an object of it.
    async with engine_on(postgres_server_url) as engine, engine.connect() as connection:
        databases = list(
            await connection.scalars(
                text(
                    "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
                    "WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = to_regrole(:name)"
                ),
                {"name": role.name},
            )
        )
    for database in databases:
        on = make_url(postgres_server_url).set(database=database).render_as_string(hide_password=False)
        await _admin(on, f'DROP OWNED BY "{role.name}"')
    await _admin(postgres_server_url, f'DROP ROLE IF EXISTS "{role.name}"')


@asynccontextmanager
async def engine_on(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def sql_error(url: str, statement: str) -> str:
    """The error PostgreSQL answers `statement` with, run as the URL's role (it must fail
    for want of a privilege, not for anything else)."""
    async with engine_on(url) as engine:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text(statement))
    cause = raised.value.orig.__cause__
    assert isinstance(cause, asyncpg.exceptions.InsufficientPrivilegeError), (statement, cause)
    return str(cause)


async def effective_table_privileges(owner_url: str, role: str) -> dict[str, set[str]]:
    async with engine_on(owner_url) as engine, engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT tablename, p FROM pg_tables, unnest(CAST(:privileges AS text[])) AS p "
                "WHERE schemaname = current_schema() AND has_table_privilege(:role, "
                "quote_ident(schemaname) || '.' || quote_ident(tablename), p)"
            ),
            {"role": role, "privileges": list(ALL_TABLE_PRIVILEGES)},
        )
        tables = await connection.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
        found: dict[str, set[str]] = {name: set() for name in tables}
        for table, privilege in rows:
            found[table].add(privilege)
    return found


def expected_privileges(tables: set[str]) -> dict[str, set[str]]:
    return {table: set(TABLE_EXCEPTIONS.get(table, SERVICE_TABLE_PRIVILEGES)) for table in tables}


# --- the service, end to end, as the role -----------------------------------------------


async def test_the_service_role_serves_reporters_and_staff_and_runs_every_job_and_the_worker(
    fresh_database_url: str, service_role: ServiceRole, settings: Settings, password_hashing, strong_password_hash
) -> None:
    # A hardened database, where PUBLIC may not call functions: the worker then calls the
    # job queue's functions on the role's own grant, and the triggers fire without one.
    await _admin(fresh_database_url, "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC")
    changes = await grant_database(fresh_database_url, service_role.name)
    assert changes.statements  # a role with nothing gets something
    role_settings = settings.model_copy(
        update={"metrics_token": SecretStr(METRICS_TOKEN)}
    ).with_database_url(service_role.url(fresh_database_url))
    owner_engine = create_async_engine(fresh_database_url)
    owner = build_sessionmaker(owner_engine)
    engine = build_engine(role_settings)
    sessionmaker = build_sessionmaker(engine)
    app = create_app(role_settings, sessionmaker=sessionmaker, key_derivation=TEST_KEY_DERIVATION)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            assert (await client.get("/readyz")).status_code == 200
            # The staff accounts are the owner's to create, as `users create` does.
            staff = StaffFactory(owner, client, password_hashing, strong_password_hash)
            officer = await staff.create(Role.TRIAGE)
            auditor = await staff.create(Role.AUDITOR)

            # A reporter: proof of work, a report, the receipt, the mailbox, a message, a file.
            receipt = await submit_ok(client)
            reporter = await reporter_headers(client, receipt)
            sent = await client.post("/api/v1/reporter/messages", json={"body": "I kept the envelope."}, headers=reporter)
            assert sent.status_code == 201, sent.text
            uploaded = await client.post(
                "/api/v1/reporter/attachments", files={"file": ("note.txt", b"the invoice " * 500, "text/plain")},
                headers=reporter,
            )
            assert uploaded.status_code == 201, uploaded.text
            download = await client.get(f"/api/v1/reporter/attachments/{uploaded.json()['id']}", headers=reporter)
            assert download.status_code == 200 and download.content == b"the invoice " * 500
            mailbox = await client.get("/api/v1/reporter/report", headers=reporter)
            assert [m["body"] for m in mailbox.json()["messages"]] == ["I kept the envelope."]

            # Triage: the queue, the case, its steps to a dismissal.
            headers = await login(client, officer, STRONG_PASSWORD)
            queue = await client.get("/api/v1/cases", headers=headers)
            assert queue.status_code == 200, queue.text
            [case] = queue.json()["items"]
            assert (await client.get(f"/api/v1/cases/{case['id']}", headers=headers)).status_code == 200
            version = case["version"]
            for action, fields in (
                ("acknowledge", {}),
                ("start_assessment", {}),
                ("dismiss", {"resolution": "not_admissible"}),
            ):
                moved = await transition(client, headers, case["id"], action, version, **fields)
                assert moved.status_code == 200, moved.text
                version = moved.json()["version"]

            # The auditor: the log, written by those steps, and its verification.
            auditor_headers = await login(client, auditor, STRONG_PASSWORD)
            log = await client.get("/api/v1/audit", headers=auditor_headers)
            assert log.status_code == 200, log.text
            actions = [entry["action"] for entry in log.json()["items"]]
            assert actions.count("case.transition") == 3 and "case.read" in actions, actions
            verified = await client.get("/api/v1/audit/verify", headers=auditor_headers)
            assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
            metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert metrics.status_code == 200, metrics.text

        # Work for every job: the dismissed case past its retention, an overdue case with
        # an abandoned upload, an expired login token, a finished drill campaign.
        async with owner() as session:
            await session.execute(
                update(Case).where(Case.id == uuid.UUID(case["id"])).values(closed_on=days_ago(400))
            )
            await session.commit()
        overdue = await insert_case(owner, received_on=days_ago(40))
        async with owner() as session:
            attachment, chunk = staged_upload(overdue.id, days_ago(10))
            session.add(attachment)
            await session.flush()
            session.add(chunk)
            session.add(token(officer, expires_at=utc_now() - timedelta(days=40)))
            await session.commit()
        await insert_campaign(owner)

        context = AppContext.build(role_settings, sessionmaker, key_derivation=TEST_KEY_DERIVATION)
        results = {job.name: await run_job(context, job) for job in JOBS}
        assert results["retention.purge"]["purged"] == 1, results
        assert results["audit.verify"]["ok"] is True, results
        assert any(results["deadlines.remind"].values()), results
        assert any(results["cleanup.expired"].values()), results

        # The worker's side of the job queue: defer, fetch, run, finish and delete a job,
        # register and unregister the worker.
        queue_app = build_queue_app(context)
        async with queue_app.open_async():
            job_id = await queue_app.tasks["audit.verify"].defer_async(timestamp=int(time.time()))
            await queue_app.run_worker_async(
                queues=[QUEUE], wait=False, install_signal_handlers=False, delete_jobs="always"
            )
        async with owner_engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}) == 0
            assert await connection.scalar(text("SELECT runs FROM job_runs WHERE name = 'audit.verify'")) == 2
            assert await connection.scalar(text("SELECT count(*) FROM procrastinate_workers")) == 0
            assert await connection.scalar(text("SELECT count(*) FROM audit_log")) >= 5
    finally:
        await engine.dispose()
        await owner_engine.dispose()


# --- what the role cannot do ------------------------------------------------------------

# PostgreSQL 15 says "relation" where 16 says "table".
OWNER_OF_AUDIT_LOG = r"must be owner of (table|relation) audit_log"
REFUSED = [
    ("UPDATE audit_log SET action = 'rewritten'", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only", OWNER_OF_AUDIT_LOG),
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", OWNER_OF_AUDIT_LOG),
    ("DROP TRIGGER audit_log_append_only ON audit_log", OWNER_OF_AUDIT_LOG),
    ("DROP TRIGGER audit_head_only_advances ON audit_head", r"must be owner of (table|relation) audit_head"),
    ("CREATE OR REPLACE FUNCTION audit_log_refuse_changes() RETURNS trigger LANGUAGE plpgsql "
     "AS $$ BEGIN RETURN NULL; END $$", "permission denied for schema public"),
    ("DELETE FROM audit_head", "permission denied for table audit_head"),
    ("INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, '\\x00')", "permission denied for table audit_head"),
    ("UPDATE installation SET receipt_salt = '\\x00'", "permission denied for table installation"),
    ("UPDATE alembic_version SET version_num = 'x'", "permission denied for table alembic_version"),
    (
        "INSERT INTO schema_compatibility (schema_revision, code_revisions) VALUES ('x', '{}')",
        "permission denied for table schema_compatibility",
    ),
    ("TRUNCATE cases", "permission denied for table cases"),
    ("DROP TABLE cases", r"must be owner of (table|relation) cases"),
    ("ALTER TABLE cases ADD COLUMN note text", r"must be owner of (table|relation) cases"),
    ("CREATE TABLE shadow (id int)", "permission denied for schema public"),
    ("CREATE TRIGGER t BEFORE INSERT ON cases FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_changes()",
     "permission denied for table cases"),
    ("SELECT setval('procrastinate_jobs_id_seq', 1)", "permission denied for sequence procrastinate_jobs_id_seq"),
    ("CREATE SCHEMA shadow", "permission denied for database"),
]


async def test_the_service_role_cannot_change_the_audit_log_or_the_schema(
    fresh_database_url: str, service_role: ServiceRole
) -> None:
    await grant_database(fresh_database_url, service_role.name)
    url = service_role.url(fresh_database_url)
    errors = {statement: await sql_error(url, statement) for statement, _ in REFUSED}
    # The privilege refuses it, not only the log's trigger (whose error has the same code).
    unexpected = {statement: errors[statement] for statement, pattern in REFUSED if not re.search(pattern, errors[statement])}
    assert unexpected == {}
    # And the owner's triggers are all still there, enabled.
    async with engine_on(fresh_database_url) as engine, engine.connect() as connection:
        triggers = set(
            await connection.scalars(
                text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND tgenabled = 'O'")
            )
        )
    assert triggers == {"audit_log_append_only", "audit_log_no_truncate"}

    found = await effective_table_privileges(fresh_database_url, service_role.name)
    assert found == expected_privileges(set(found))
    assert found["audit_log"] == {"SELECT", "INSERT"} and found["alembic_version"] == {"SELECT"}
    assert found["schema_compatibility"] == {"SELECT"}


async def test_granting_again_changes_nothing_then_takes_back_what_was_added_and_covers_a_new_table(
    fresh_database_url: str, service_role: ServiceRole
) -> None:
    first = await grant_database(fresh_database_url, service_role.name)
    second = await grant_database(fresh_database_url, service_role.name)
    assert first.statements and second.statements == []
    assert (second.tables, second.sequences, second.functions) == (first.tables, first.sequences, first.functions)
    assert "already has exactly" in second.summary()

    role = f'"{service_role.name}"'
    await _admin(
        fresh_database_url,
        f"GRANT TRUNCATE, TRIGGER, REFERENCES ON cases TO {role}",
        f"GRANT UPDATE (details) ON audit_log TO {role}",
        f"GRANT DELETE ON audit_log TO {role} WITH GRANT OPTION",
        f"GRANT CREATE ON SCHEMA public TO {role}",
        f"GRANT UPDATE ON SEQUENCE procrastinate_jobs_id_seq TO {role}",
        f"GRANT SELECT ON installation TO {role} WITH GRANT OPTION",
        # A later migration's table.
        "CREATE TABLE later_feature (id bigserial PRIMARY KEY, note text)",
    )
    third = await grant_database(fresh_database_url, service_role.name)
    assert third.statements and third.tables == first.tables + 1 and third.sequences == first.sequences + 1
    found = await effective_table_privileges(fresh_database_url, service_role.name)
    assert found == expected_privileges(set(found))
    assert found["later_feature"] == set(SERVICE_TABLE_PRIVILEGES)
    async with engine_on(fresh_database_url) as engine, engine.connect() as connection:
        checks = (
            await connection.execute(
                text(
                    "SELECT has_any_column_privilege(:r, 'audit_log', 'UPDATE'), "
                    "has_schema_privilege(:r, 'public', 'CREATE'), "
                    "has_sequence_privilege(:r, 'procrastinate_jobs_id_seq', 'UPDATE'), "
                    "has_sequence_privilege(:r, 'later_feature_id_seq', 'USAGE'), "
                    "has_table_privilege(:r, 'installation', 'SELECT WITH GRANT OPTION')"
                ),
                {"r": service_role.name},
            )
        ).one()
    assert tuple(checks) == (False, False, False, True, False)
    assert (await grant_database(fresh_database_url, service_role.name)).statements == []

    # What was given to PUBLIC is not the role's to lose: the grant refuses, changing nothing.
    await _admin(fresh_database_url, "GRANT TRUNCATE ON cases TO PUBLIC", f"GRANT TRIGGER ON cases TO {role}")
    with pytest.raises(RoleRefused, match="still has TRUNCATE on table 'cases' through PUBLIC"):
        await grant_database(fresh_database_url, service_role.name)
    async with engine_on(fresh_database_url) as engine, engine.connect() as connection:
        assert await connection.scalar(text("SELECT has_table_privilege(:r, 'cases', 'TRIGGER')"), {"r": service_role.name})


# --- the commands --------------------------------------------------------------------------


async def assert_nothing_granted(database_url: str, role: str) -> None:
    async with engine_on(database_url) as engine, engine.connect() as connection:
        granted = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a "
                "WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = to_regrole(:r)"
            ),
            {"r": role},
        )
        schema = await connection.scalar(
            text("SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a "
                 "WHERE n.nspname = 'public' AND a.grantee = to_regrole(:r)"),
            {"r": role},
        )
    assert (granted, schema) == (0, 0)


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("cleanwindow: nothing was changed: ") and reason in result.stderr, result.stderr


@pytest.mark.slow
async def test_the_commands_refuse_a_missing_role_a_superuser_and_an_owner_in_one_line(
    fresh_database_url: str, service_role: ServiceRole, postgres_server_url: str
) -> None:
    missing = f"cw_missing_{secrets.token_hex(4)}"
    assert_one_line_refusal(
        run_cli("db", "grant", missing, database_url=fresh_database_url), f"there is no role named '{missing}'"
    )

    # A role that owns one table of the schema (and so could drop it and its triggers).
    await _admin(fresh_database_url, f'ALTER TABLE drill_effects OWNER TO "{service_role.name}"')
    assert_one_line_refusal(
        run_cli("db", "upgrade", "--grant-to", service_role.name, database_url=fresh_database_url),
        "owns, or is a member of the owner of, table 'drill_effects'",
    )
    await assert_nothing_granted(fresh_database_url, service_role.name)

    # The owner itself, by way of membership.
    await _admin(fresh_database_url, f'ALTER TABLE drill_effects OWNER TO "{make_url(fresh_database_url).username}"')
    owner_group = f"cw_owners_{secrets.token_hex(4)}"
    await _admin(postgres_server_url, f'CREATE ROLE "{owner_group}"', f'GRANT "{owner_group}" TO "{service_role.name}"')
    try:
        await _admin(fresh_database_url, f'ALTER FUNCTION audit_head_only_advances() OWNER TO "{owner_group}"')
        assert_one_line_refusal(
            run_cli("db", "grant", service_role.name, database_url=fresh_database_url),
            "owns, or is a member of the owner of, function 'audit_head_only_advances'",
        )
        await assert_nothing_granted(fresh_database_url, service_role.name)
    finally:
        await _admin(fresh_database_url, f'ALTER FUNCTION audit_head_only_advances() OWNER TO "{make_url(fresh_database_url).username}"')
        await _admin(postgres_server_url, f'DROP ROLE "{owner_group}"')

    superuser, role_maker = f"cw_super_{secrets.token_hex(4)}", f"cw_maker_{secrets.token_hex(4)}"
    await _admin(postgres_server_url, f'CREATE ROLE "{superuser}" SUPERUSER', f'CREATE ROLE "{role_maker}" CREATEROLE')
    try:
        assert_one_line_refusal(
            run_cli("db", "grant", superuser, database_url=fresh_database_url), f"role '{superuser}' is a superuser"
        )
        assert_one_line_refusal(
            run_cli("db", "grant", role_maker, database_url=fresh_database_url), f"role '{role_maker}' has CREATEROLE"
        )
        await assert_nothing_granted(fresh_database_url, role_maker)
    finally:
        await _admin(postgres_server_url, f'DROP ROLE "{superuser}"', f'DROP ROLE "{role_maker}"')

    granted = run_cli("db", "grant", service_role.name, database_url=fresh_database_url)
    assert granted.returncode == 0, granted.stderr
    assert f"role '{service_role.name}' now has exactly the service's privileges" in granted.stdout


@pytest.mark.slow
async def test_a_refused_role_leaves_an_empty_database_unmigrated(empty_database_url: str) -> None:
    missing = f"cw_missing_{secrets.token_hex(4)}"
    assert_one_line_refusal(
        run_cli("db", "upgrade", "--grant-to", missing, database_url=empty_database_url),
        f"there is no role named '{missing}'",
    )
    async with engine_on(empty_database_url) as engine, engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")) == 0


def role_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=database_url,
        CLEANWINDOW_DATA_DIR=str(data_dir),
        POW_DIFFICULTY="8",
        # The in-process worker of development's `serve`, ticking every two seconds.
        CLEANWINDOW_JOBS__SCHEDULES=json.dumps({"notifications.deliver": "* * * * * */2"}),
    )
    return env


@pytest.mark.slow
async def test_after_upgrade_with_grant_on_an_empty_database_the_role_serves_and_works(
    empty_database_url: str, service_role: ServiceRole, postgres_server_url: str, tmp_path: Path
) -> None:
    # As in production: the database belongs to an owner role that is no superuser.
    owner = ServiceRole(f"cw_owner_{secrets.token_hex(5)}")
    name = make_url(empty_database_url).database
    await _admin(postgres_server_url, f'CREATE ROLE "{owner.name}" LOGIN', f'ALTER DATABASE "{name}" OWNER TO "{owner.name}"')
    try:
        upgraded = run_cli("db", "upgrade", "--grant-to", service_role.name, database_url=owner.url(empty_database_url))
        assert upgraded.returncode == 0, upgraded.stderr
        assert "database schema at revision" in upgraded.stdout
        assert f"role '{service_role.name}' now has exactly the service's privileges" in upgraded.stdout
        await serve_and_work_as(service_role, empty_database_url, tmp_path)
    finally:
        server_user = make_url(postgres_server_url).username
        await _admin(empty_database_url, f'REASSIGN OWNED BY "{owner.name}" TO "{server_user}"')
        await _admin(postgres_server_url, f'DROP ROLE "{owner.name}"')


async def serve_and_work_as(service_role: ServiceRole, empty_database_url: str, tmp_path: Path) -> None:

    # `serve` as the role: its migration step finds the head and changes nothing, the web
    # app and development's in-process worker run on the role's connections.
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=role_env(service_role.url(empty_database_url), tmp_path / "data"),
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_ready(base_url, process)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            issued = (await client.post("/api/v1/intake/challenges")).json()
            body = {
                "channel": "citizen", "category": "bribery", "org_unit": "construction_transport", "language": "en",
                "content": {"summary": "An envelope for a permit", "details": "Asked at the desk.", "where": "Desk 3"},
                "pow": {"challenge": issued["challenge"], "nonce": pow.solve(issued["challenge"], issued["difficulty"])},
            }
            submitted = await client.post("/api/v1/reports", json=body)
            assert submitted.status_code == 201, submitted.text
            opened = await client.post("/api/v1/reporter/sessions", json={"receipt": submitted.json()["receipt"]})
            assert opened.status_code == 201, opened.text

        async with engine_on(empty_database_url) as engine:
            async def deliver_runs() -> int:
                async with engine.connect() as connection:
                    return await connection.scalar(
                        text("SELECT coalesce(max(runs), 0) FROM job_runs WHERE name = 'notifications.deliver'")
                    )

            deadline = time.monotonic() + 60
            while await deliver_runs() < 2:
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the role's worker ran no job"
                time.sleep(0.5)
    finally:
        exit_code = stop(process, signal.SIGINT)
    logged = log_path.read_text()
    assert exit_code == 0, logged[-3000:]
    assert "permission denied" not in logged and "must be owner" not in logged, logged[-3000:]
    assert not [line for line in logged.splitlines() if '"level": "ERROR"' in line], logged[-3000:]


async def test_a_role_name_that_needs_quoting_is_granted_as_named(fresh_database_url: str, postgres_server_url: str) -> None:
    name = f'cw app"; DROP TABLE cases; -- {secrets.token_hex(3)}'
    quoted = '"' + name.replace('"', '""') + '"'
    await _admin(postgres_server_url, f"CREATE ROLE {quoted}")
    try:
        assert (await grant_database(fresh_database_url, name)).statements
        assert (await grant_database(fresh_database_url, name)).statements == []
        found = await effective_table_privileges(fresh_database_url, name)
        assert found == expected_privileges(set(found)) and "cases" in found
    finally:
        await _admin(fresh_database_url, f"DROP OWNED BY {quoted}")
        await _admin(postgres_server_url, f"DROP ROLE {quoted}")
