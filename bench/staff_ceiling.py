"""The ceiling of the staff paths: the product's own SQL, statement for statement, through
asyncpg directly, answering the same JSON. bench/staff_bench.py runs it beside the product
and quotes product / ceiling.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cw_bench_x .venv/bin/python bench/staff_ceiling.py --port 8001

What it keeps of the product: FastAPI and uvicorn run the same way as `cleanwindow serve`
(`uvicorn.run(app, ...)` with the same options; loop and http "auto", which with
`uvicorn[standard]` installed are uvloop and httptools, as for the product); the
settings (secret key, time zone, pool size, the same server settings on each connection);
the pure domain functions (the token's HMAC, the audit entry's hash, the state machine,
deadlines, base64url), so the answers are computed the same way. What it drops: the ORM
(statements are the texts SQLAlchemy sends, copied from a capture of the product, with the
same parameters), pydantic models (plain dicts and json.dumps), dependency injection
beyond FastAPI's routing, and the middleware stack. Neither pings a pooled connection
before use (the product stopped doing so; it discards the ones asyncpg knows closed).

Paths: GET /api/v1/cases?limit=N (no filters), GET /api/v1/cases/{id},
POST /api/v1/cases/{id}/transitions (no `accept` or `refer`: the bench acknowledges),
GET /api/v1/cases/{id}/history, POST /api/v1/cases/{id}/messages,
POST /api/v1/cases/{id}/grants, GET /api/v1/audit (limit, no filters), GET /api/v1/stats.
Only the success paths and the refusals the bench could hit are answered like the product.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import make_url

from app.domain import crypto
from app.domain.audit import AuditRecord, entry_hash
from app.domain.clock import organisation_date, utc_now
from app.domain.crypto import PublicKey
from app.domain.errors import DomainError, InvalidInput, NotAuthenticated, NotFound
from app.domain.staff import Role
from app.domain.tokens import token_digest
from app.domain.triage import (
    CASE_ROLES,
    Action,
    CaseState,
    Deadlines,
    Resolution,
    allowed_actions,
    decide,
    feedback_due,
    may_see_case,
)
from app.domain.triage import Request as TransitionRequest
from app.settings import Settings

# --- the product's statements, as SQLAlchemy renders them for asyncpg -------------------

TOKEN_SQL = (
    "SELECT staff_users.username, staff_users.role, staff_users.password_hash, staff_users.is_active, "
    "staff_users.failed_login_count, staff_users.last_failed_login_at, staff_users.locked_until, "
    "staff_users.public_key, staff_users.public_key_fingerprint, staff_users.public_key_registered_at, "
    "staff_users.is_identity_custodian, staff_users.email, staff_users.id, staff_users.created_at, "
    "staff_users.updated_at, staff_tokens.user_id, staff_tokens.digest, staff_tokens.created_at AS created_at_1, "
    "staff_tokens.expires_at, staff_tokens.revoked_at, staff_tokens.id AS id_1 \n"
    "FROM staff_tokens JOIN staff_users ON staff_users.id = staff_tokens.user_id \n"
    "WHERE staff_tokens.digest = $1::BYTEA AND staff_tokens.revoked_at IS NULL "
    "AND staff_tokens.expires_at > $2::TIMESTAMP WITH TIME ZONE AND staff_users.is_active IS true"
)

_CASE_COLUMNS_HEAD = (
    "cases.channel, cases.category, cases.org_unit, cases.language, cases.state, cases.version, "
    "cases.is_drill, cases.drill_campaign_id, cases.shown_as_drill, cases.received_on, "
    "cases.acknowledge_due_on, cases.feedback_due_on, cases.acknowledged_on, cases.feedback_given_on, "
    "cases.next_due_on, cases.assignee_id, cases.resolution, cases.closed_on, cases.purged_on, "
    "cases.receipt_scheme, cases.receipt_tag, "
)

QUEUE_SQL = (
    "SELECT cases.id, cases.state, cases.version, cases.channel, cases.category, cases.org_unit, cases.language, "
    "cases.shown_as_drill, cases.received_on, cases.acknowledge_due_on, cases.acknowledged_on, "
    "cases.feedback_due_on, cases.feedback_given_on, cases.resolution, cases.purged_on, "
    "staff_users.username AS assignee_username \nFROM cases LEFT OUTER JOIN staff_users ON "
    "staff_users.id = cases.assignee_id ORDER BY cases.received_on, cases.id \n LIMIT $1::INTEGER"
)

CASE_SQL = (
    "SELECT " + _CASE_COLUMNS_HEAD + "cases.reporter_public_key, cases.sealed_report, cases.pow_digest, "
    "cases.idempotency_digest, cases.sealed_replay, cases.id \nFROM cases \nWHERE cases.id = $1::UUID"
)
CASE_FOR_UPDATE_SQL = CASE_SQL + " FOR UPDATE"

_CASE_KEY_COLUMNS = (
    "case_keys.case_id, case_keys.recipient_kind, case_keys.staff_user_id, case_keys.recipient_fingerprint, "
    "case_keys.sealed_key, case_keys.granted_by_id, case_keys.granted_at, case_keys.id \nFROM case_keys \n"
)
STAFF_KEYS_SQL = (
    "SELECT " + _CASE_KEY_COLUMNS + "WHERE case_keys.case_id = $1::UUID AND case_keys.staff_user_id = $2::UUID"
)
KEY_FOR_FINGERPRINT_SQL = (
    "SELECT " + _CASE_KEY_COLUMNS
    + "WHERE case_keys.case_id = $1::UUID AND case_keys.recipient_fingerprint = $2::VARCHAR"
)

_MESSAGE_COLUMNS = (
    "case_messages.case_id, case_messages.seq, case_messages.author, case_messages.staff_user_id, "
    "case_messages.sent_on, case_messages.sent_at, case_messages.sealed_body, case_messages.seal_format, "
    "case_messages.id \nFROM case_messages \n"
)
MESSAGES_SQL = "SELECT " + _MESSAGE_COLUMNS + "WHERE case_messages.case_id = $1::UUID ORDER BY case_messages.seq"
MESSAGE_BY_ID_SQL = "SELECT " + _MESSAGE_COLUMNS + "WHERE case_messages.id = $1::UUID"
NEXT_SEQ_SQL = "SELECT max(case_messages.seq) AS max_1 \nFROM case_messages \nWHERE case_messages.case_id = $1::UUID"
INSERT_MESSAGE_SQL = (
    "INSERT INTO case_messages (case_id, seq, author, staff_user_id, sent_on, sent_at, sealed_body, seal_format, id) "
    "VALUES ($1::UUID, $2::INTEGER, $3::VARCHAR, $4::UUID, $5::DATE, $6::TIMESTAMP WITH TIME ZONE, $7::BYTEA, "
    "$8::SMALLINT, $9::UUID) ON CONFLICT DO NOTHING RETURNING case_messages.id"
)

ATTACHMENTS_SQL = (
    "SELECT case_attachments.case_id, case_attachments.staging_case_id, case_attachments.staged_on, "
    "case_attachments.author, case_attachments.staff_user_id, case_attachments.uploaded_on, "
    "case_attachments.stored_bytes, case_attachments.chunk_bytes, case_attachments.chunk_count, "
    "case_attachments.sealed_meta, case_attachments.id \nFROM case_attachments \n"
    "WHERE case_attachments.case_id = $1::UUID ORDER BY case_attachments.uploaded_on, case_attachments.id"
)
IDENTITY_FLAGS_SQL = (
    "SELECT EXISTS (SELECT * \nFROM case_identities \nWHERE case_identities.case_id = $1::UUID) AS anon_1, "
    "EXISTS (SELECT * \nFROM identity_keys \nWHERE identity_keys.case_id = $1::UUID AND "
    "identity_keys.staff_user_id = $2::UUID AND identity_keys.holder_kind = $3::VARCHAR) AS anon_2"
)
_STAFF_COLUMNS = (
    "staff_users.username, staff_users.role, staff_users.password_hash, staff_users.is_active, "
    "staff_users.failed_login_count, staff_users.last_failed_login_at, staff_users.locked_until, "
    "staff_users.public_key, staff_users.public_key_fingerprint, staff_users.public_key_registered_at, "
    "staff_users.is_identity_custodian, staff_users.email, staff_users.id, staff_users.created_at, "
    "staff_users.updated_at \nFROM staff_users \n"
)
STAFF_BY_ID_SQL = "SELECT " + _STAFF_COLUMNS + "WHERE staff_users.id = $1::UUID"
STAFF_BY_USERNAME_SQL = "SELECT " + _STAFF_COLUMNS + "WHERE staff_users.username = $1::VARCHAR"
USERNAMES_SQL = (
    "SELECT staff_users.id, staff_users.username \nFROM staff_users \n"
    "WHERE staff_users.id IN ($1::UUID)"  # widened per call: SQLAlchemy's expanding IN
)

# SQLAlchemy's unit of work sets only the columns whose value changed, in table order.
CASE_UPDATE_COLUMNS = (
    ("state", "VARCHAR"), ("version", "INTEGER"), ("feedback_due_on", "DATE"), ("acknowledged_on", "DATE"),
    ("feedback_given_on", "DATE"), ("next_due_on", "DATE"),
)
INSERT_TRANSITION_SQL = (
    "INSERT INTO case_transitions (case_id, version, action, from_state, to_state, actor_id, occurred_at, reason, "
    "resolution, assignee_id, id) VALUES ($1::UUID, $2::INTEGER, $3::VARCHAR, $4::VARCHAR, $5::VARCHAR, $6::UUID, "
    "$7::TIMESTAMP WITH TIME ZONE, $8::VARCHAR, $9::VARCHAR, $10::UUID, $11::UUID)"
)
HISTORY_SQL = (
    "SELECT case_transitions.case_id, case_transitions.version, case_transitions.action, case_transitions.from_state, "
    "case_transitions.to_state, case_transitions.actor_id, case_transitions.occurred_at, case_transitions.reason, "
    "case_transitions.resolution, case_transitions.assignee_id, case_transitions.id, actor.username, actor.role, "
    "assignee.username AS username_1 \nFROM case_transitions JOIN staff_users AS actor ON actor.id = "
    "case_transitions.actor_id LEFT OUTER JOIN staff_users AS assignee ON assignee.id = case_transitions.assignee_id "
    "\nWHERE case_transitions.case_id = $1::UUID ORDER BY case_transitions.version"
)
INSERT_KEY_SQL = (
    "INSERT INTO case_keys (case_id, recipient_kind, staff_user_id, recipient_fingerprint, sealed_key, granted_by_id, "
    "granted_at, id) VALUES ($1::UUID, $2::VARCHAR, $3::UUID, $4::VARCHAR, $5::BYTEA, $6::UUID, "
    "$7::TIMESTAMP WITH TIME ZONE, $8::UUID) ON CONFLICT DO NOTHING RETURNING case_keys.id"
)

AUDIT_HEAD_SQL = "SELECT audit_head.seq, audit_head.hash \nFROM audit_head \nWHERE audit_head.id = $1::SMALLINT FOR UPDATE"
# The entry inserted and the head advanced in one statement, as the product's AuditLog.append.
AUDIT_APPEND_SQL = (
    "WITH appended AS \n(INSERT INTO audit_log (seq, occurred_at, action, actor_id, actor_username, actor_role, "
    "case_id, details, prev_hash, hash) VALUES ($3::BIGINT, $4::TIMESTAMP WITH TIME ZONE, $5::VARCHAR, $6::UUID, "
    "$7::VARCHAR, $8::VARCHAR, $9::UUID, $10::JSONB, $11::BYTEA, $12::BYTEA))\n "
    "UPDATE audit_head SET seq=$1::BIGINT, hash=$2::BYTEA WHERE audit_head.id = $13::SMALLINT"
)
ENDED_WINDOWS_EXIST_SQL = (
    "SELECT EXISTS (SELECT * \nFROM audit_window_counts \n"
    "WHERE audit_window_counts.window_start < $1::TIMESTAMP WITH TIME ZONE) AS anon_1"
)
AUDIT_PAGE_SQL = (
    "SELECT audit_log.seq, audit_log.occurred_at, audit_log.action, audit_log.actor_id, audit_log.actor_username, "
    "audit_log.actor_role, audit_log.case_id, audit_log.details, audit_log.prev_hash, audit_log.hash \n"
    "FROM audit_log ORDER BY audit_log.seq DESC \n LIMIT $1::INTEGER"
)

STATS_BY_STATE_SQL = "SELECT cases.state, count(*) AS count_1 \nFROM cases \nWHERE cases.is_drill IS false GROUP BY cases.state"
STATS_BY_CATEGORY_SQL = (
    "SELECT cases.category, count(*) AS count_1 \nFROM cases \nWHERE cases.is_drill IS false GROUP BY cases.category"
)
_ACK = (
    "CASE WHEN (cases.acknowledged_on IS NOT NULL AND cases.acknowledged_on <= cases.acknowledge_due_on) THEN "
    "$1::VARCHAR WHEN (cases.acknowledged_on IS NOT NULL) THEN $2::VARCHAR WHEN (cases.acknowledge_due_on < "
    "$3::DATE) THEN $4::VARCHAR ELSE $5::VARCHAR END"
)
_FEEDBACK = (
    "CASE WHEN (cases.feedback_given_on IS NOT NULL AND cases.feedback_given_on <= cases.feedback_due_on) THEN "
    "$6::VARCHAR WHEN (cases.feedback_given_on IS NOT NULL) THEN $7::VARCHAR WHEN (cases.feedback_due_on < "
    "$8::DATE) THEN $9::VARCHAR ELSE $10::VARCHAR END"
)
STATS_COMPLIANCE_SQL = (
    f"SELECT {_ACK} AS acknowledgement, {_FEEDBACK} AS feedback, count(*) AS count_1 \nFROM cases \n"
    f"WHERE cases.is_drill IS false GROUP BY {_ACK}, {_FEEDBACK}"
)


SUMMARY_FIELDS = (
    "id", "state", "version", "channel", "category", "org_unit", "language", "is_drill", "received_on",
    "acknowledge_due_on", "acknowledged_on", "feedback_due_on", "feedback_given_on", "overdue", "assignee",
    "resolution", "purged_on",
)
STATS_ROLES = frozenset({Role.TRIAGE, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN})
AUDIT_ROLES = frozenset({Role.AUDITOR, Role.ADMIN})
SEALED_MESSAGE_MAX = 128 * 1024
COUNTING_WINDOW_SECONDS = 3600


class Forbidden(DomainError):
    slug = "forbidden"
    title = "Forbidden"
    status = 403


class Conflict(DomainError):
    slug = "conflict"
    title = "Conflict"
    status = 409


# --- JSON -----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """What pydantic's JSON mode makes of a value: dates ISO, UTC datetimes with Z."""
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return crypto.b64url_encode(value)
    return value


def answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=plain).encode(),
        status_code=status, media_type="application/json",
    )


def refusal(error: DomainError) -> Response:
    return Response(
        json.dumps({"type": error.type, "title": error.title, "status": error.status, "detail": str(error)}).encode(),
        status_code=error.status, media_type="application/problem+json",
    )


# --- the app -------------------------------------------------------------------------------


def create_ceiling(settings: Settings, *, statements: list[str] | None = None) -> FastAPI:
    """The ceiling app; with `statements`, every statement its connections send is appended
    there (bench/staff_sql_check.py compares them with the product's)."""
    secret = settings.secret_key_bytes
    zone = settings.zone
    feedback_months = settings.intake.feedback_months
    raw_url = make_url(settings.database_url.get_secret_value()).set(drivername="postgresql")
    dsn = raw_url.render_as_string(hide_password=False)
    state: dict[str, asyncpg.Pool] = {}

    async def leave_as_is(connection: asyncpg.Connection) -> None:
        return None

    async def log_statements(connection: asyncpg.Connection) -> None:
        connection.add_query_logger(lambda record: statements.append(record.query))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state["pool"] = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=2 * settings.database_pool_size,  # the product's pool_size + max_overflow
            timeout=settings.database_pool_timeout_seconds,
            server_settings={"tcp_keepalives_idle": "60", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "6"},
            init=log_statements if statements is not None else None,
            # asyncpg resets a released connection with one more statement (advisory
            # unlocks, CLOSE ALL, UNLISTEN, RESET ALL); SQLAlchemy's reset on return sends
            # nothing after a commit. Every transaction here ends before release.
            reset=leave_as_is,
        )
        try:
            yield
        finally:
            await state["pool"].close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    async def staff(connection: asyncpg.Connection, request: Request, now: datetime) -> asyncpg.Record:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated("This endpoint needs a staff bearer token.")
        row = await connection.fetchrow(TOKEN_SQL, token_digest(secret, token), now)
        if row is None:
            raise NotAuthenticated("The token is unknown, expired or revoked; log in again.")
        return row

    def require_case_role(user: asyncpg.Record) -> Role:
        role = Role(user["role"])
        if role not in CASE_ROLES:
            raise Forbidden("Cases are open to the roles investigator, supervisor, triage only.")
        return role

    async def visible_case(connection, user, case_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record:
        role = require_case_role(user)
        case = await connection.fetchrow(CASE_FOR_UPDATE_SQL if lock else CASE_SQL, case_id)
        if case is None or not may_see_case(role, case["assignee_id"] == user["id"]):
            raise NotFound("No case with this id is open to you.")
        return case

    async def username_of(connection, user, user_id: uuid.UUID | None) -> str | None:
        # session.get: the caller's own row is in the identity map (loaded with the token).
        if user_id is None:
            return None
        if user_id == user["id"]:
            return user["username"]
        row = await connection.fetchrow(STAFF_BY_ID_SQL, user_id)
        return row["username"] if row else None

    def deadlines(case: dict[str, Any] | asyncpg.Record) -> Deadlines:
        return Deadlines(
            acknowledge_due_on=case["acknowledge_due_on"], acknowledged_on=case["acknowledged_on"],
            feedback_due_on=case["feedback_due_on"], feedback_given_on=case["feedback_given_on"],
            closed=case["state"] == CaseState.CLOSED.value,
        )

    def summary(case, assignee: str | None, today: date) -> dict[str, Any]:
        return {
            "id": case["id"], "state": case["state"], "version": case["version"], "channel": case["channel"],
            "category": case["category"], "org_unit": case["org_unit"], "language": case["language"],
            "is_drill": case["shown_as_drill"], "received_on": case["received_on"],
            "acknowledge_due_on": case["acknowledge_due_on"], "acknowledged_on": case["acknowledged_on"],
            "feedback_due_on": case["feedback_due_on"], "feedback_given_on": case["feedback_given_on"],
            "overdue": deadlines(case).overdue(today), "assignee": assignee, "resolution": case["resolution"],
            "purged_on": case["purged_on"],
        }

    def allowed_for(user, case) -> list[str]:
        if case["purged_on"] is not None:
            return []
        return [str(action) for action in allowed_actions(
            CaseState(case["state"]), Role(user["role"]), case["assignee_id"] == user["id"]
        )]

    async def audit(connection, now: datetime, event: str, user, case_id: uuid.UUID, **details: Any) -> None:
        head = await connection.fetchrow(AUDIT_HEAD_SQL, 1)
        seq = head["seq"] + 1
        record = AuditRecord(
            occurred_at=now, action=event, actor_id=user["id"], actor_username=user["username"],
            actor_role=user["role"], case_id=case_id, details=details,
        )
        digest = entry_hash(head["hash"], seq, record)
        await connection.execute(
            AUDIT_APPEND_SQL, seq, digest, seq, now, event, user["id"], user["username"], user["role"], case_id,
            json.dumps(details), head["hash"], digest, 1,
        )

    async def update_case(connection, before, after: dict[str, Any]) -> None:
        changed = [(name, kind) for name, kind in CASE_UPDATE_COLUMNS if after[name] != before[name]]
        if not changed:
            return
        assignments = ", ".join(f"{name}=${n}::{kind}" for n, (name, kind) in enumerate(changed, start=1))
        await connection.execute(
            f"UPDATE cases SET {assignments} WHERE cases.id = ${len(changed) + 1}::UUID",
            *(after[name] for name, _ in changed), after["id"],
        )

    def parse_id(text: str) -> uuid.UUID:
        try:
            return uuid.UUID(text)
        except ValueError:
            raise InvalidInput("Not a UUID.") from None

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise InvalidInput("The body is not JSON.") from None
        if not isinstance(body, dict):
            raise InvalidInput("The body is not a JSON object.")
        return body

    def handled(endpoint):
        @functools.wraps(endpoint)  # FastAPI reads the endpoint's signature through __wrapped__
        async def run(*args, **kwargs):
            try:
                return await endpoint(*args, **kwargs)
            except DomainError as error:
                return refusal(error)

        return run

    @app.get("/api/v1/cases")
    @handled
    async def list_cases(request: Request, limit: int = 50) -> Response:
        if not 1 <= limit <= 200:
            raise InvalidInput("limit is 1..200")
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            require_case_role(user)
            if Role(user["role"]) is Role.INVESTIGATOR:
                raise InvalidInput("The ceiling does not filter by assignee (the bench lists as triage).")
            today = organisation_date(now, zone)
            rows = await connection.fetch(QUEUE_SQL, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = (
            crypto.b64url_encode(json.dumps([rows[-1]["received_on"].isoformat(), str(rows[-1]["id"])]).encode())
            if more and rows else None
        )
        return answer({"items": [summary(row, row["assignee_username"], today) for row in rows], "next_cursor": cursor})

    @app.get("/api/v1/cases/{case_id}")
    @handled
    async def show_case(case_id: str, request: Request) -> Response:
        case_uuid = parse_id(case_id)
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            case = await visible_case(connection, user, case_uuid)
            keys = await connection.fetch(STAFF_KEYS_SQL, case["id"], user["id"])
            content_key = next((k for k in keys if k["recipient_fingerprint"] == user["public_key_fingerprint"]), None)
            if content_key is None and keys:
                content_key = max(keys, key=lambda k: k["granted_at"] or datetime.min.replace(tzinfo=UTC))
            messages = await connection.fetch(MESSAGES_SQL, case["id"])
            author_ids = list({m["staff_user_id"] for m in messages if m["staff_user_id"]})
            authors: dict[uuid.UUID, str] = {}
            if author_ids:
                statement = USERNAMES_SQL.replace(
                    "($1::UUID)", "(" + ", ".join(f"${n}::UUID" for n in range(1, len(author_ids) + 1)) + ")"
                )
                authors = {row["id"]: row["username"] for row in await connection.fetch(statement, *author_ids)}
            assignee = await username_of(connection, user, case["assignee_id"])
            today = organisation_date(now, zone)
            attachments = await connection.fetch(ATTACHMENTS_SQL, case["id"])
            flags = await connection.fetchrow(IDENTITY_FLAGS_SQL, case["id"], user["id"], "requester")
            await audit(connection, now, "case.read", user, case["id"], content_key=content_key is not None)
        body = summary(case, assignee, today)
        body.update(
            allowed_actions=allowed_for(user, case),
            reporter_public_key=PublicKey(case["reporter_public_key"]).to_text() if case["reporter_public_key"] else None,
            sealed_report=case["sealed_report"],
            content_key={"fingerprint": content_key["recipient_fingerprint"], "sealed_key": content_key["sealed_key"]}
            if content_key else None,
            messages=[
                {"id": m["id"], "seq": m["seq"], "author": m["author"], "staff_username": authors.get(m["staff_user_id"]),
                 "sent_on": m["sent_on"], "sent_at": m["sent_at"], "sealed_body": m["sealed_body"],
                 "seal_format": m["seal_format"]}
                for m in messages
            ],
            attachments=[
                {"id": a["id"], "author": a["author"], "uploaded_on": a["uploaded_on"], "chunk_count": a["chunk_count"],
                 "chunk_bytes": a["chunk_bytes"], "stored_bytes": a["stored_bytes"], "sealed_meta": a["sealed_meta"]}
                for a in attachments
            ],
            identified=bool(flags[0]),
            identity_released_to_you=bool(flags[1]),
        )
        return answer(body)

    @app.post("/api/v1/cases/{case_id}/transitions")
    @handled
    async def transition(case_id: str, request: Request) -> Response:
        case_uuid = parse_id(case_id)
        body = await json_body(request)
        version = body.get("expected_version")
        if set(body) - {"action", "expected_version", "reason", "resolution", "assignee"} or type(version) is not int \
                or version < 1 or body.get("action") not in {a.value for a in Action}:
            raise InvalidInput("Not a transition request.")
        action = Action(body["action"])
        if action in (Action.ACCEPT, Action.REFER):
            raise InvalidInput("The ceiling does not take `accept` or `refer` (the bench acknowledges).")
        resolution = Resolution(body["resolution"]) if body.get("resolution") else None
        reason = (body.get("reason") or "").strip() or None
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            before = await visible_case(connection, user, case_uuid, lock=True)
            case = dict(before)
            if case["purged_on"] is not None:
                raise Conflict(f"`{action}` is not possible on this case")
            source = CaseState(case["state"])
            request_ = TransitionRequest(action=action, expected_version=version, reason=reason, resolution=resolution)
            target = decide(source, case["version"], request_, Role(user["role"]), case["assignee_id"] == user["id"])
            if action is not Action.ACKNOWLEDGE or resolution is not None or target is CaseState.CLOSED:
                raise InvalidInput("The ceiling takes `acknowledge` only (the statement the bench measures).")
            today = organisation_date(now, zone)
            case["acknowledged_on"] = today
            case["feedback_due_on"] = feedback_due(case["acknowledge_due_on"], today, feedback_months)
            case["state"] = target.value
            case["version"] += 1
            case["next_due_on"] = deadlines(case).next_due()
            await update_case(connection, before, case)
            await connection.execute(
                INSERT_TRANSITION_SQL, case["id"], case["version"], action.value, source.value, target.value,
                user["id"], now, reason, None, None, uuid.uuid4(),
            )
            await audit(
                connection, now, "case.transition", user, case["id"], action=action.value, from_state=source.value,
                to_state=target.value, version=case["version"], resolution=None, assignee=None,
            )
            assignee = await username_of(connection, user, case["assignee_id"])
        return answer({**summary(case, assignee, today), "allowed_actions": allowed_for(user, case)})

    @app.get("/api/v1/cases/{case_id}/history")
    @handled
    async def history(case_id: str, request: Request) -> Response:
        case_uuid = parse_id(case_id)
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            case = await visible_case(connection, user, case_uuid)
            rows = await connection.fetch(HISTORY_SQL, case["id"])
        return answer({"items": [
            {"version": r["version"], "action": r["action"], "from_state": r["from_state"], "to_state": r["to_state"],
             "actor": r["username"], "actor_role": r["role"], "occurred_at": r["occurred_at"], "reason": r["reason"],
             "resolution": r["resolution"], "assignee": r["username_1"]}
            for r in rows
        ]})

    async def require_key_holder(connection, case, user) -> None:
        if not await connection.fetch(STAFF_KEYS_SQL, case["id"], user["id"]):
            raise Conflict("You hold no key to this case, so nothing you seal could belong to it; ask a colleague who does for a grant.")

    @app.post("/api/v1/cases/{case_id}/messages")
    @handled
    async def send_message(case_id: str, request: Request) -> Response:
        case_uuid = parse_id(case_id)
        body = await json_body(request)
        if set(body) != {"id", "sealed_body", "seal_format"} or body["seal_format"] != crypto.MESSAGE_SEAL_FORMAT \
                or not isinstance(body["sealed_body"], str) or not isinstance(body["id"], str):
            raise InvalidInput("Not a sealed staff message.")
        message_id = parse_id(body["id"])
        try:
            sealed_body = crypto.b64url_decode(body["sealed_body"])
        except ValueError:
            raise InvalidInput("sealed_body is not base64url.") from None
        if not crypto.NONCE_BYTES + 16 <= len(sealed_body) <= SEALED_MESSAGE_MAX:
            raise InvalidInput("sealed_body has the wrong size.")
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            case = await visible_case(connection, user, case_uuid, lock=True)
            if case["purged_on"] is not None:
                raise Conflict("This case takes no more messages")
            await require_key_holder(connection, case, user)
            if await connection.fetchrow(MESSAGE_BY_ID_SQL, message_id) is not None:
                raise Conflict("A message with this id exists; seal the message again under a new id.")
            seq = (await connection.fetchval(NEXT_SEQ_SQL, case["id"]) or 0) + 1
            sent_on = organisation_date(now, zone)
            if await connection.fetchval(
                INSERT_MESSAGE_SQL, case["id"], seq, "staff", user["id"], sent_on, now, sealed_body,
                crypto.MESSAGE_SEAL_FORMAT, message_id,
            ) is None:
                raise Conflict("A message with this id exists; seal the message again under a new id.")
            if case["acknowledged_on"] is not None and case["feedback_given_on"] is None:
                given = dict(case, feedback_given_on=sent_on)
                given["next_due_on"] = deadlines(given).next_due()
                await update_case(connection, case, given)
            await audit(connection, now, "case.message", user, case["id"], message_id=str(message_id))
        return answer({"id": message_id, "seq": seq, "sent_on": sent_on, "sent_at": now}, 201)

    @app.post("/api/v1/cases/{case_id}/grants")
    @handled
    async def grant(case_id: str, request: Request) -> Response:
        case_uuid = parse_id(case_id)
        body = await json_body(request)
        if set(body) != {"grantee", "fingerprint", "sealed_key"} or not all(isinstance(v, str) for v in body.values()) \
                or not 1 <= len(body["grantee"]) <= 64 or not 1 <= len(body["fingerprint"]) <= 64:
            raise InvalidInput("Not a grant.")
        try:
            sealed_key = crypto.b64url_decode(body["sealed_key"])
        except ValueError:
            raise InvalidInput("sealed_key is not base64url.") from None
        if len(sealed_key) != crypto.SEALED_CONTENT_KEY_BYTES:
            raise InvalidInput("sealed_key has the wrong size.")
        fingerprint = body["fingerprint"]
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            case = await visible_case(connection, user, case_uuid, lock=True)
            if case["purged_on"] is not None:
                raise Conflict("This case's key cannot be granted")
            await require_key_holder(connection, case, user)
            grantee = await connection.fetchrow(STAFF_BY_USERNAME_SQL, body["grantee"].strip().lower())
            if grantee is None or not grantee["is_active"]:
                raise InvalidInput(f"No active staff account is named `{body['grantee']}`.")
            if not may_see_case(Role(grantee["role"]), case["assignee_id"] == grantee["id"]):
                raise InvalidInput(f"`{grantee['username']}` may not read this case.")
            if grantee["public_key_fingerprint"] is None:
                raise InvalidInput(f"`{grantee['username']}` has not registered a public key yet.")
            if fingerprint != grantee["public_key_fingerprint"]:
                raise Conflict(f"`{grantee['username']}`'s key is {grantee['public_key_fingerprint']}, not {fingerprint}.")
            if await connection.fetchrow(KEY_FOR_FINGERPRINT_SQL, case["id"], fingerprint) is not None:
                raise Conflict(f"`{grantee['username']}` already holds this case's key.")
            if await connection.fetchval(
                INSERT_KEY_SQL, case["id"], "staff", grantee["id"], fingerprint, sealed_key, user["id"], now, uuid.uuid4()
            ) is None:
                raise Conflict(f"`{grantee['username']}` already holds this case's key.")
            await audit(connection, now, "case.grant", user, case["id"], grantee=grantee["username"], fingerprint=fingerprint)
        return answer({"grantee": grantee["username"], "fingerprint": fingerprint, "granted_at": now}, 201)

    @app.get("/api/v1/audit")
    @handled
    async def audit_log(request: Request, limit: int = 100) -> Response:
        if not 1 <= limit <= 500:
            raise InvalidInput("limit is 1..500")
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            if Role(user["role"]) not in AUDIT_ROLES:
                raise Forbidden("This needs one of the roles: admin, auditor.")
            # The product looks for ended counting windows and, when there are some,
            # writes them in a transaction of its own before it pages.
            seconds = int(now.timestamp())
            window = datetime.fromtimestamp(seconds - seconds % COUNTING_WINDOW_SECONDS, UTC)
            if await connection.fetchval(ENDED_WINDOWS_EXIST_SQL, window):
                raise Conflict("The ceiling does not write counted windows; use the product once first.")
            rows = await connection.fetch(AUDIT_PAGE_SQL, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return answer({
            "items": [
                {"seq": r["seq"], "occurred_at": r["occurred_at"], "actor": r["actor_username"],
                 "actor_role": r["actor_role"], "action": r["action"], "case_id": r["case_id"],
                 "details": json.loads(r["details"]), "prev_hash": r["prev_hash"].hex(), "hash": r["hash"].hex()}
                for r in rows
            ],
            "next_cursor": str(rows[-1]["seq"]) if more and rows else None,
        })

    @app.get("/api/v1/stats")
    @handled
    async def stats(request: Request) -> Response:
        now = utc_now()
        async with state["pool"].acquire() as connection, connection.transaction():
            user = await staff(connection, request, now)
            if Role(user["role"]) not in STATS_ROLES:
                raise Forbidden("Statistics are open to triage, supervisors, auditors and administrators.")
            today = organisation_date(now, zone)
            by_state = dict(list(row) for row in await connection.fetch(STATS_BY_STATE_SQL))
            by_category = dict(list(row) for row in await connection.fetch(STATS_BY_CATEGORY_SQL))
            rows = await connection.fetch(
                STATS_COMPLIANCE_SQL, "met", "late", today, "missed", "pending", "met", "late", today, "missed", "pending"
            )
        totals = {name: dict.fromkeys(("met", "late", "missed", "pending"), 0) for name in ("acknowledgement", "feedback")}
        for acknowledgement, feedback, count in rows:
            totals["acknowledgement"][acknowledgement] += count
            totals["feedback"][feedback] += count
        return answer({
            "total": sum(by_state.values()),
            "by_state": {s.value: by_state.get(s.value, 0) for s in CaseState},
            "by_category": by_category,
            **totals,
            "as_of": today,
        })

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ:
        raise SystemExit("set DATABASE_URL to the product's database")
    settings = Settings()
    # As app/cli/server.py's `serve`: uvicorn's defaults for loop and http ("auto").
    uvicorn.run(
        create_ceiling(settings), host=args.host, port=args.port, log_config=None, access_log=False,
        proxy_headers=False, server_header=False,
    )


if __name__ == "__main__":
    main()
