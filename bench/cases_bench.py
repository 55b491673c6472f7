"""Case-queue benchmark on generated cases, over real HTTP, loopback only, stops by itself.

    .venv/bin/python bench/cases_bench.py                             # 1,000,000 cases, embedded PostgreSQL
    .venv/bin/python bench/cases_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/cases_bench.py --cases 20000 --repeats 1   # a quick look

It creates a database of its own (`cw_bench_<random>`) on the server of `--database-url`
(a loopback or Unix-socket server where it may create databases; default: an embedded
PostgreSQL in a temporary folder), migrates it with the real Alembic migrations, fills
`cases` with `--cases` generated rows in SQL (INSERT ... SELECT over generate_series,
deterministic: the same rows every run), runs VACUUM (ANALYZE) and a checkpoint, prints
EXPLAIN (ANALYZE, BUFFERS) of each queue query shape exactly as the service issues it,
then starts `cleanwindow serve` on that database (through `http_bench.own_server`) and
measures, with a triage officer's bearer token:

- queue pages (`GET /api/v1/cases`, limit 50): the first page, a page from a cursor in the
  middle of the queue, and the first page of each filter state=received,
  category=subsidies, assignee=<an investigator>, overdue=true, drill=true;
- transitions: `acknowledge` (expected_version 1) of distinct received cases by
  `--transition-concurrency` clients at once (each a row lock, a history row and an
  audit-chain entry, which serialises on the chain's head row);
- then, as a correctness check, that many acknowledges of one single case at once: exactly
  one 200 and the rest 409 stale-version, and the history, versions and audit chain agree.

Scenarios run `--repeats` times interleaved with the same-run baseline `healthz`, as in
http_bench.py; the table quotes medians over runs. The database is dropped at the end.

The generated queue spreads cases evenly over three years ending today: cases received in
the last ten days are mostly `received`, older ones move on, and past a year nearly all are
closed (with resolutions, an investigator assigned to those investigated); eight
categories (skewed, bribery most common), both channels, 8 units, 5% English,
acknowledgements mostly within the seven days, feedback given for most acknowledged cases.
Drill cases (about 0.3%) are those of one campaign running over the last three weeks: the
contract purges a campaign's cases when it closes, so drills are always recent. Sealed
reports are 540 or 1052 pseudo-random bytes (the padded sizes real reports have) and every
case carries a real 1216-byte public key, so rows are as wide as the service's own.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import (  # noqa: E402  (a sibling script, not a package)
    BASELINE,
    Prepared,
    RunResult,
    Scenario,
    fixed,
    own_server,
    results_table,
    run_interleaved,
)

from app.cases.repository import CaseFilters, CaseRepository, QueuePosition  # noqa: E402
from app.cases.service import encode_cursor  # noqa: E402
from app.domain.clock import DEFAULT_TIMEZONE, organisation_date, organisation_zone, utc_now  # noqa: E402
from app.domain.crypto import PrivateKey  # noqa: E402
from app.domain.intake import DEFAULT_CATEGORIES, DEFAULT_ORG_UNITS  # noqa: E402
from app.domain.staff import PasswordHashing, Role  # noqa: E402
from app.domain.triage import CaseState  # noqa: E402
from app.db.migrations import upgrade_database  # noqa: E402
from app.drills.models import DrillCampaign  # noqa: E402
from app.staff.models import StaffUser  # noqa: E402

PAGE = 50
TRIAGE_USERNAME = "bench-triage-" + secrets.token_hex(3)
PASSWORD = "benchmark passphrase " + secrets.token_hex(4)
INVESTIGATORS = [f"bench-investigator-{number}" for number in range(1, 7)]
CATEGORY = "subsidies"
SPAN_DAYS = 3 * 365
ACKNOWLEDGE_DAYS = 7  # the service's defaults (settings.intake)
FEEDBACK_MONTHS = 3
BATCH = 100_000
# A plan that reads more rows of `cases` than this to produce one page is flagged.
BIG_SCAN_ROWS = 10_000

SCENARIO_KEYS = ("healthz", "first", "deep", "state", "category", "assignee", "overdue", "drill", "transitions")


def uniform(seed: int) -> str:
    """A deterministic uniform [0, 1) per series number `n`, one independent stream per seed."""
    return f"((hashint8extended(n, {seed}) & 4294967295)::float8 / 4294967296.0)"


# Every CHECK of `cases` holds by construction: states and channels from the lists,
# resolutions only on closed cases, version 1, no replay columns.
GENERATE_SQL = f"""
WITH p AS (
    SELECT CAST(:today AS date) AS today,
           CAST(:today AS date) - {SPAN_DAYS - 1} AS first_day,
           CAST(:total AS bigint) AS total,
           CAST(:categories AS text[]) AS categories,
           CAST(:units AS text[]) AS units,
           CAST(:investigators AS uuid[]) AS investigators,
           CAST(:campaign AS uuid) AS campaign
),
g AS (
    SELECT n, p.today, p.first_day, p.categories, p.units, p.investigators, p.campaign,
           p.first_day + ((n - 1) * {SPAN_DAYS} / p.total)::int AS received_on,
           {uniform(1)} AS r_state, {uniform(2)} AS r_ack, {uniform(3)} AS r_feedback,
           {uniform(4)} AS r_feedback_days, {uniform(5)} AS r_outcome, {uniform(6)} AS r_pick,
           {uniform(7)} AS r_assignee, {uniform(8)} AS r_channel, {uniform(9)} AS r_category,
           {uniform(10)} AS r_unit, {uniform(11)} AS r_language, {uniform(12)} AS r_drill,
           {uniform(13)} AS r_size
    FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint)) AS n, p
),
s AS (
    SELECT g.*,
           CASE
               WHEN today - received_on < 10 THEN CASE
                   WHEN r_state < 0.60 THEN 'received' WHEN r_state < 0.85 THEN 'acknowledged'
                   ELSE 'assessing' END
               WHEN today - received_on < 120 THEN CASE
                   WHEN r_state < 0.01 THEN 'received' WHEN r_state < 0.10 THEN 'acknowledged'
                   WHEN r_state < 0.35 THEN 'assessing' WHEN r_state < 0.60 THEN 'investigating'
                   WHEN r_state < 0.70 THEN 'referred' ELSE 'closed' END
               WHEN today - received_on < 365 THEN CASE
                   WHEN r_state < 0.01 THEN 'assessing' WHEN r_state < 0.09 THEN 'investigating'
                   WHEN r_state < 0.13 THEN 'referred' ELSE 'closed' END
               ELSE CASE
                   WHEN r_state < 0.010 THEN 'investigating' WHEN r_state < 0.015 THEN 'referred'
                   ELSE 'closed' END
           END AS state
    FROM g
),
o AS (
    SELECT s.*,
           CASE WHEN state = 'closed' THEN CASE
               WHEN r_outcome < 0.35 THEN 'not_admissible' WHEN r_outcome < 0.50 THEN 'duplicate'
               WHEN r_outcome < 0.75 THEN 'unsubstantiated' WHEN r_outcome < 0.90 THEN 'substantiated'
               END END AS resolution,
           -- Mostly within the seven days, some late; never after today.
           CASE WHEN state <> 'received'
               THEN LEAST(today, received_on + floor(r_ack * r_ack * 12)::int) END AS acknowledged_on
    FROM s
),
f AS (
    SELECT o.*,
           received_on + {ACKNOWLEDGE_DAYS} AS acknowledge_due_on,
           (COALESCE(acknowledged_on, received_on + {ACKNOWLEDGE_DAYS})
               + interval '{FEEDBACK_MONTHS} months')::date AS feedback_due_on,
           CASE WHEN acknowledged_on IS NOT NULL AND r_feedback < CASE state
                    WHEN 'acknowledged' THEN 0.2 WHEN 'assessing' THEN 0.6 WHEN 'closed' THEN 0.95 ELSE 0.85 END
                THEN LEAST(today, acknowledged_on + floor(r_feedback_days * 100)::int) END AS feedback_given_on
    FROM o
)
INSERT INTO cases (
    id, channel, category, org_unit, language, state, version, is_drill, drill_campaign_id,
    shown_as_drill, received_on, acknowledge_due_on, feedback_due_on, acknowledged_on, feedback_given_on, next_due_on,
    assignee_id, resolution, closed_on, receipt_scheme, receipt_tag, reporter_public_key, sealed_report
)
SELECT
    gen_random_uuid(),
    CASE WHEN r_channel < 0.7 THEN 'citizen' ELSE 'employee' END,
    categories[1 + floor(cardinality(categories) * power(r_category, 1.6))::int],
    CASE WHEN r_unit >= 0.1 THEN units[1 + floor(cardinality(units) * (r_unit - 0.1) / 0.9)::int] END,
    CASE WHEN r_language < 0.05 THEN 'en' ELSE 'ko' END,
    state,
    1,
    today - received_on < 21 AND r_drill < 0.15,
    -- One announced campaign holds every drill case (a drill case needs its campaign).
    CASE WHEN today - received_on < 21 AND r_drill < 0.15 THEN campaign END,
    today - received_on < 21 AND r_drill < 0.15,
    received_on,
    acknowledge_due_on,
    feedback_due_on,
    acknowledged_on,
    feedback_given_on,
    -- triage.Deadlines.next_due(): the earliest deadline still waiting for its act.
    CASE WHEN state = 'closed' THEN NULL
         WHEN acknowledged_on IS NULL THEN acknowledge_due_on
         WHEN feedback_given_on IS NULL THEN feedback_due_on END,
    CASE WHEN state = 'investigating'
              OR resolution IN ('substantiated', 'unsubstantiated')
              OR (state = 'referred' AND r_pick < 0.5)
              OR (state = 'closed' AND resolution IS NULL AND r_pick < 0.5)
         THEN investigators[1 + floor(cardinality(investigators) * r_assignee)::int] END,
    resolution,
    CASE WHEN state = 'closed' THEN coalesce(feedback_given_on, acknowledged_on, received_on) END,
    1,
    sha256(int8send(n)),
    CAST(:reporter_key AS bytea),
    substring(
        (SELECT string_agg(sha256(int8send(n) || int2send(k::int2)), ''::bytea ORDER BY k)
         FROM generate_series(1, CASE WHEN r_size < 0.25 THEN 33 ELSE 17 END) AS k)
        FOR CASE WHEN r_size < 0.25 THEN 1052 ELSE 540 END
    )
FROM f
"""

SUMMARY_SQL = """
SELECT
    count(*) AS cases,
    count(*) FILTER (WHERE state = 'received') AS received,
    count(*) FILTER (WHERE state <> 'closed') AS open,
    count(*) FILTER (WHERE is_drill) AS drills,
    count(*) FILTER (WHERE assignee_id IS NOT NULL) AS assigned,
    count(*) FILTER (WHERE category = :category) AS in_category,
    -- Overdue as the contract words it, independently of the stored next_due_on.
    count(*) FILTER (WHERE state <> 'closed' AND (
        (acknowledged_on IS NULL AND acknowledge_due_on < :today)
        OR (feedback_given_on IS NULL AND feedback_due_on < :today))) AS overdue,
    count(*) FILTER (WHERE next_due_on < :today) AS overdue_stored,
    pg_size_pretty(pg_total_relation_size('cases')) AS size
FROM cases
"""


@dataclass
class Shape:
    """One queue query: HTTP query parameters and the same filters as the service sees them."""

    key: str
    label: str
    params: dict[str, str]
    filters: CaseFilters
    after: QueuePosition | None = None


@dataclass
class Dataset:
    """The generated database, as the HTTP part needs it."""

    summary: dict[str, Any]
    generate_seconds: float
    shapes: dict[str, Shape]
    plans: dict[str, dict[str, Any]]
    received_pool: list[str]


def asyncpg_url(raw: str) -> str:
    return make_url(raw).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def database_url_named(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def refuse_non_loopback_database(raw: str) -> None:
    try:
        url = make_url(raw)
    except Exception as error:  # noqa: BLE001  (SQLAlchemy's ArgumentError, or a bad port)
        raise SystemExit(f"--database-url is not a database URL: {error}") from None
    socket_dir = url.query.get("host")
    if url.host is None and (socket_dir is None or str(socket_dir).startswith("/")):
        return  # a Unix socket
    host = url.host or str(socket_dir)
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to load database host {host!r}: benchmarks target loopback addresses only")


@contextmanager
def database_server(given: str | None) -> Iterator[str]:
    """A maintenance-database URL on the server to use: the one given, or an embedded one."""
    if given:
        yield asyncpg_url(given)
        return
    from app.db.embedded import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="cw-cases-bench-pg-") as folder:
        with embedded_postgres(Path(folder), database="postgres") as url:
            yield url


async def admin(server_url: str, *statements: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def log(message: str) -> None:
    print(f"[cases_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the database: staff, cases, plans ------------------------------------------------


async def create_staff(engine: AsyncEngine) -> dict[str, str]:
    """The triage officer the bench logs in as, and the investigators cases go to."""
    hashing = PasswordHashing()
    never_used = hashing.hash(secrets.token_urlsafe(24))  # the investigators never log in
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        users = [StaffUser(username=TRIAGE_USERNAME, role=Role.TRIAGE.value, password_hash=hashing.hash(PASSWORD))]
        users += [StaffUser(username=name, role=Role.INVESTIGATOR.value, password_hash=never_used) for name in INVESTIGATORS]
        session.add_all(users)
        await session.commit()
        return {user.username: str(user.id) for user in users}


async def create_campaign(engine: AsyncEngine, today: date) -> str:
    """The announced drill campaign the generated drill cases belong to."""
    now = datetime.now(UTC)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        coordinator = StaffUser(
            username="bench-coordinator", role=Role.DRILL_COORDINATOR.value, password_hash="never used"
        )
        session.add(coordinator)
        await session.flush()
        campaign = DrillCampaign(
            id=uuid.uuid4(), name="bench drill", starts_at=now - timedelta(days=30), ends_at=now + timedelta(days=30),
            blind=False, state="running", token_digest=os.urandom(32), scenarios=[],
            created_by_id=coordinator.id, created_at=now,
        )
        session.add(campaign)
        await session.commit()
        return str(campaign.id)


async def generate_cases(engine: AsyncEngine, total: int, today: date, investigator_ids: list[str]) -> float:
    started = time.perf_counter()
    reporter_key = PrivateKey.generate().public_key.raw
    campaign = await create_campaign(engine, today)
    for low in range(1, total + 1, BATCH):
        high = min(total, low + BATCH - 1)
        async with engine.begin() as connection:
            await connection.execute(
                text(GENERATE_SQL),
                {
                    "today": today,
                    "total": total,
                    "low": low,
                    "high": high,
                    "categories": [category.code for category in DEFAULT_CATEGORIES],
                    "units": [unit.code for unit in DEFAULT_ORG_UNITS],
                    "investigators": investigator_ids,
                    "campaign": campaign,
                    "reporter_key": reporter_key,
                },
            )
        log(f"generated {high:,} of {total:,} cases ({time.perf_counter() - started:.0f} s)")
    elapsed = time.perf_counter() - started
    # A steady state, as autovacuum would leave it, so that it does not start mid-run;
    # and a checkpoint, so that the bulk load's writes are not flushed during the runs.
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as connection:
        await connection.execute(text("VACUUM (ANALYZE) cases"))
        await connection.execute(text("ANALYZE staff_users"))
        try:
            await connection.execute(text("CHECKPOINT"))
        except Exception as error:  # noqa: BLE001  (not a superuser: the run goes on)
            log(f"no checkpoint ({type(error).__name__}); the bulk load may still be flushing")
    log(f"VACUUM (ANALYZE) and CHECKPOINT done ({time.perf_counter() - started:.0f} s in all)")
    return elapsed


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


async def explain_shapes(engine: AsyncEngine, shapes: dict[str, Shape], today: date) -> dict[str, dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the very SQL `CaseRepository.queue` sends for each shape."""
    captured: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    plans: dict[str, dict[str, Any]] = {}
    try:
        async with async_sessionmaker(engine)() as session:
            repository = CaseRepository(session)
            for key, shape in shapes.items():
                captured.clear()
                await repository.queue(shape.filters, shape.after, PAGE + 1, today)
                statement, parameters = captured[-1]
                driver = (await (await session.connection()).get_raw_connection()).driver_connection
                # Twice: the first run warms the cache, the second is the one reported.
                await driver.fetch("EXPLAIN (ANALYZE) " + statement, *parameters)
                rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
                document = await driver.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *parameters)
                if isinstance(document, str):  # SQLAlchemy's connection decodes json; a bare one would not
                    document = json.loads(document)
                document = document[0]
                scans = [
                    node for node in plan_nodes(document["Plan"]) if node.get("Relation Name") == "cases"
                ]
                read = sum(
                    (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                     + node.get("Rows Removed by Index Recheck", 0)) * node.get("Actual Loops", 1)
                    for node in scans
                )
                plans[key] = {
                    "label": shape.label,
                    "text": [row[0] for row in rows],
                    "scans": [f"{node['Node Type']} {node.get('Index Name', '')}".strip() for node in scans],
                    "cases_rows_read": int(read),
                    "execution_ms": document["Execution Time"],
                    "big_scan": read > BIG_SCAN_ROWS or any(node["Node Type"] == "Seq Scan" for node in scans),
                }
            await session.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    return plans


async def prepare_database(url: str, args: argparse.Namespace, today: date) -> Dataset:
    log("migrating with the Alembic migrations")
    await upgrade_database(url)
    engine = create_async_engine(url, hide_parameters=True)
    try:
        staff = await create_staff(engine)
        investigator_ids = [staff[name] for name in INVESTIGATORS]
        log(f"generating {args.cases:,} cases in SQL")
        generate_seconds = await generate_cases(engine, args.cases, today, investigator_ids)
        async with engine.connect() as connection:
            summary = dict(
                (await connection.execute(text(SUMMARY_SQL), {"category": CATEGORY, "today": today})).mappings().one()
            )
            if summary["overdue"] != summary.pop("overdue_stored"):
                raise SystemExit("the generated next_due_on disagrees with the deadlines (a bench bug)")
            summary["by_state"] = dict(
                (await connection.execute(text("SELECT state, count(*) FROM cases GROUP BY state ORDER BY 2 DESC"))).all()
            )
            middle = (
                await connection.execute(
                    text("SELECT received_on, id FROM cases ORDER BY received_on, id OFFSET :skip LIMIT 1"),
                    {"skip": args.cases // 2},
                )
            ).one()
            pool = [
                str(row[0])
                for row in await connection.execute(
                    text("SELECT id FROM cases WHERE state = 'received' AND version = 1 ORDER BY id")
                )
            ]
        random.Random(4).shuffle(pool)
        deep = QueuePosition(middle.received_on, middle.id)
        investigator = INVESTIGATORS[0]
        shapes = {
            "first": Shape("first", "first page, no filter", {}, CaseFilters()),
            "deep": Shape(
                "deep", f"deep page (cursor at case {args.cases // 2:,})", {"cursor": encode_cursor(deep)},
                CaseFilters(), deep,
            ),
            "state": Shape("state", "state=received", {"state": "received"}, CaseFilters(state=CaseState.RECEIVED)),
            "category": Shape("category", f"category={CATEGORY}", {"category": CATEGORY}, CaseFilters(category=CATEGORY)),
            "assignee": Shape(
                "assignee", f"assignee={investigator}", {"assignee": investigator},
                CaseFilters(assignee_id=uuid.UUID(staff[investigator])),
            ),
            "overdue": Shape("overdue", "overdue=true", {"overdue": "true"}, CaseFilters(overdue=True)),
            "drill": Shape("drill", "drill=true", {"drill": "true"}, CaseFilters(drill=True)),
            # Explained only: the one filter without an index of its own.
            "channel": Shape("channel", "channel=employee (explained only)", {"channel": "employee"},
                             CaseFilters(channel="employee")),
        }
        log("EXPLAIN (ANALYZE) of each queue query")
        plans = await explain_shapes(engine, shapes, today)
        return Dataset(summary, generate_seconds, shapes, plans, pool)
    finally:
        await engine.dispose()


# --- over HTTP --------------------------------------------------------------------------


def check_page(shape: Shape, body: dict[str, Any], investigator: str) -> list[str]:
    """What is wrong with a page for this shape (sanity, untimed)."""
    items = body["items"]
    problems = []
    ordered = [(item["received_on"], item["id"]) for item in items]
    if ordered != sorted(ordered):
        problems.append("items out of (received_on, id) order")
    tests: dict[str, Callable[[dict[str, Any]], bool]] = {
        "state": lambda item: item["state"] == "received",
        "category": lambda item: item["category"] == CATEGORY,
        "assignee": lambda item: item["assignee"] == investigator,
        "overdue": lambda item: item["overdue"] is True,
        "drill": lambda item: item["is_drill"] is True,
        "deep": lambda item: shape.after is not None and (item["received_on"], item["id"])
        > (shape.after.received_on.isoformat(), str(shape.after.id)),
    }
    test = tests.get(shape.key)
    if test and not all(test(item) for item in items):
        problems.append(f"items that do not match {shape.label}")
    return problems


async def contention(client: httpx.AsyncClient, auth: dict[str, str], case_id: str, clients: int) -> dict[str, Any]:
    """`clients` acknowledges of one case at once, all believing version 1."""
    responses = await asyncio.gather(
        *(
            client.post(f"/api/v1/cases/{case_id}/transitions", headers=auth,
                        json={"action": "acknowledge", "expected_version": 1})
            for _ in range(clients)
        )
    )
    statuses = Counter(response.status_code for response in responses)
    stale = sum(
        1 for response in responses
        if response.status_code == 409 and response.json().get("type", "").endswith("stale-version")
    )
    return {"clients": clients, "statuses": dict(statuses), "stale_version_409": stale,
            "ok": statuses.get(200) == 1 and stale == clients - 1}


async def consistency(url: str, case_id: str) -> dict[str, Any]:
    """After the runs: every acknowledged case has exactly one history row and one audit entry."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT (SELECT count(*) FROM cases WHERE version > 1) AS moved,"
                        " (SELECT count(*) FROM case_transitions) AS history,"
                        " (SELECT count(*) FROM audit_log WHERE action = 'case.transition') AS audited,"
                        " (SELECT version FROM cases WHERE id = CAST(:case_id AS uuid)) AS contended_version,"
                        " (SELECT count(*) FROM case_transitions WHERE case_id = CAST(:case_id AS uuid))"
                        "   AS contended_history"
                    ),
                    {"case_id": case_id},
                )
            ).mappings().one()
    finally:
        await engine.dispose()
    result = dict(row)
    result["ok"] = (
        result["moved"] == result["history"] == result["audited"]
        and result["contended_version"] == 2 and result["contended_history"] == 1
    )
    return result


async def benchmark(
    base_url: str, url: str, prepared: Dataset, args: argparse.Namespace
) -> tuple[dict[str, tuple[str, list[RunResult]]], dict[str, Any], dict[str, Any], list[str]]:
    clients = max(args.concurrency, args.transition_concurrency)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        login = await client.post("/api/v1/auth/token", data={"username": TRIAGE_USERNAME, "password": PASSWORD})
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        notes: list[str] = []
        scenarios: dict[str, Scenario] = {
            "healthz": Scenario("healthz (baseline, no database)", args.baseline_requests, 200,
                                fixed(lambda c: c.get("/healthz"))),
        }
        for key in ("first", "deep", "state", "category", "assignee", "overdue", "drill"):
            if key not in args.scenarios:
                continue
            shape = prepared.shapes[key]
            params = {**shape.params, "limit": str(PAGE)}
            page = await client.get("/api/v1/cases", params=params, headers=auth)
            if page.status_code != 200:
                raise SystemExit(f"{shape.label}: HTTP {page.status_code}: {page.text}")
            problems = check_page(shape, page.json(), INVESTIGATORS[0])
            if problems:
                raise SystemExit(f"{shape.label}: " + "; ".join(problems))
            if len(page.json()["items"]) < PAGE:
                notes.append(f"{shape.label}: only {len(page.json()['items'])} items on the page (generate more cases)")

            def get_page(c: httpx.AsyncClient, params: dict[str, str] = params) -> Awaitable[httpx.Response]:
                return c.get("/api/v1/cases", params=params, headers=auth)

            scenarios[key] = Scenario(f"GET /cases: {shape.label}", args.requests, 200, fixed(get_page))

        pool = prepared.received_pool
        contended = pool.pop()
        if "transitions" in args.scenarios:

            async def prepare_transitions(count: int) -> Prepared:
                cases = iter([pool.pop() for _ in range(count)])

                def acknowledge(c: httpx.AsyncClient) -> Awaitable[httpx.Response]:
                    return c.post(f"/api/v1/cases/{next(cases)}/transitions", headers=auth,
                                  json={"action": "acknowledge", "expected_version": 1})

                return Prepared(acknowledge)

            scenarios["transitions"] = Scenario(
                f"POST /cases/{{id}}/transitions: acknowledge, distinct cases, "
                f"{args.transition_concurrency} clients",
                args.transitions, 200, prepare_transitions, concurrency=args.transition_concurrency,
            )

        results = await run_interleaved(
            client, scenarios, args.repeats, args.concurrency,
            on_round=lambda number: log(f"round {number} of {args.repeats}" if number else "warming up"),
        )
        contended_result = await contention(client, auth, contended, args.transition_concurrency)
    checked = await consistency(url, contended)
    return results, contended_result, checked, notes


# --- the report ---------------------------------------------------------------------------


def report(
    prepared: Dataset,
    results: dict[str, tuple[str, list[RunResult]]],
    contended: dict[str, Any],
    checked: dict[str, Any],
    notes: list[str],
    args: argparse.Namespace,
) -> str:
    summary = prepared.summary
    states = ", ".join(f"{state} {count:,}" for state, count in summary["by_state"].items())
    lines = [
        f"{summary['cases']:,} generated cases ({summary['size']} with indexes; generated in "
        f"{prepared.generate_seconds:.0f} s): {states}; open {summary['open']:,}, overdue {summary['overdue']:,}, "
        f"drills {summary['drills']:,}, assigned {summary['assigned']:,}, {CATEGORY} {summary['in_category']:,}",
        f"concurrency {args.concurrency} (pages, baseline), {args.transition_concurrency} (transitions); "
        f"{args.repeats} interleaved runs per scenario; medians over runs",
        f"per run: {args.requests} pages of {PAGE} per listing scenario, {args.transitions} transitions, "
        f"{args.baseline_requests} healthz; vs. baseline = median over runs of requests/s divided by {BASELINE}'s "
        f"in the same round; errors = answers other than 200, summed over runs",
        "",
        *results_table(results, BASELINE),
        "",
        f"contention: {contended['clients']} acknowledges of one case at once (all expected_version 1): "
        + ", ".join(f"{count} x {status}" for status, count in sorted(contended["statuses"].items()))
        + f" ({contended['stale_version_409']} stale-version) -> "
        + ("OK, exactly one succeeded" if contended["ok"] else "WRONG: expected one 200 and the rest 409"),
        f"consistency: {checked['moved']:,} cases moved, {checked['history']:,} history rows, "
        f"{checked['audited']:,} audit entries; contended case at version {checked['contended_version']} with "
        f"{checked['contended_history']} history row -> " + ("OK" if checked["ok"] else "WRONG"),
        *notes,
        "",
        f"query plans (EXPLAIN (ANALYZE, BUFFERS) of the service's own SQL, limit {PAGE + 1}, second run):",
    ]
    for plan in prepared.plans.values():
        flag = f"  <-- reads more than {BIG_SCAN_ROWS:,} rows or scans the table" if plan["big_scan"] else ""
        lines.append(
            f"- {plan['label']}: {', '.join(plan['scans'])}; {plan['cases_rows_read']:,} rows of cases read; "
            f"{plan['execution_ms']:.2f} ms{flag}"
        )
    if args.plans:
        for plan in prepared.plans.values():
            lines += ["", f"## {plan['label']}", *plan["text"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a loopback PostgreSQL server where the bench may create and drop "
                        "a database (e.g. postgresql://postgres@127.0.0.1:5432/postgres); default: an embedded one")
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases to generate (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=200, help="pages per listing scenario per run (default 200)")
    parser.add_argument("--transitions", type=int, default=300, help="transitions per run (default 300)")
    parser.add_argument("--baseline-requests", type=int, default=400, help="healthz requests per run (default 400)")
    parser.add_argument("--concurrency", type=int, default=4, help="clients at once for pages and healthz (default 4)")
    parser.add_argument("--transition-concurrency", type=int, default=8,
                        help="clients at once for transitions and the contention check (default 8)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--scenarios", type=lambda value: [part.strip() for part in value.split(",") if part.strip()],
        help=f"comma-separated subset of {','.join(SCENARIO_KEYS)} (default: all); {BASELINE} always runs",
    )
    parser.add_argument("--plans", action="store_true", help="also print every query plan in full")
    parser.add_argument("--json", type=Path, help="also write raw per-run results, the data summary and plans here")
    args = parser.parse_args()
    if not 1_000 <= args.cases <= 10_000_000:
        raise SystemExit("keep --cases within 1000..10000000")
    if not 1 <= args.requests <= 100_000 or not 1 <= args.baseline_requests <= 100_000:
        raise SystemExit("keep --requests and --baseline-requests within 1..100000")
    if not 1 <= args.transitions <= 100_000 or not 1 <= args.repeats <= 50:
        raise SystemExit("keep --transitions within 1..100000 and --repeats within 1..50")
    if not 1 <= args.concurrency <= 256 or not 2 <= args.transition_concurrency <= 256:
        raise SystemExit("keep --concurrency within 1..256 and --transition-concurrency within 2..256")
    args.scenarios = args.scenarios or list(SCENARIO_KEYS)
    unknown = sorted(set(args.scenarios) - set(SCENARIO_KEYS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIO_KEYS)}")
    args.scenarios = [BASELINE, *(key for key in SCENARIO_KEYS if key in args.scenarios and key != BASELINE)]
    if args.database_url:
        refuse_non_loopback_database(args.database_url)

    # The organisation's date, as the service started below (which inherits this
    # environment) computes it, so that the summary's "overdue" agrees with the service's.
    zone = organisation_zone(os.environ.get("CLEANWINDOW_TIMEZONE", DEFAULT_TIMEZONE))
    today = organisation_date(utc_now(), zone)
    with database_server(args.database_url) as server:
        name = f"cw_bench_{secrets.token_hex(4)}"
        asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
        log(f"created database {name}")
        try:
            url = database_url_named(server, name)
            prepared = asyncio.run(prepare_database(url, args, today))
            needed = 1 + (
                args.transitions * args.repeats + min(args.transitions, 20) if "transitions" in args.scenarios else 0
            )
            if len(prepared.received_pool) < needed:
                raise SystemExit(
                    f"{len(prepared.received_pool)} received cases, {needed} needed for the transitions: "
                    "generate more --cases or ask for fewer --transitions"
                )
            with own_server(sys.executable, 8, extra_env={"DATABASE_URL": url}, create_admin=False) as base_url:
                results, contended, checked, notes = asyncio.run(benchmark(base_url, url, prepared, args))
        finally:
            asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"dropped database {name}")

    print(report(prepared, results, contended, checked, notes, args))
    if args.json:
        raw = {
            "date": today.isoformat(),
            "summary": {key: value for key, value in prepared.summary.items()},
            "generate_seconds": prepared.generate_seconds,
            "runs": {key: {"label": label, "runs": [vars(run) for run in runs]} for key, (label, runs) in results.items()},
            "medians": {
                key: {
                    "requests_per_second": statistics.median(run.requests_per_second for run in runs),
                    "p50_ms": statistics.median(run.p50_ms for run in runs),
                    "p99_ms": statistics.median(run.p99_ms for run in runs),
                }
                for key, (label, runs) in results.items()
            },
            "contention": contended,
            "consistency": checked,
            "plans": prepared.plans,
        }
        args.json.write_text(json.dumps(raw, indent=2, ensure_ascii=False, default=str))
    if not (contended["ok"] and checked["ok"]):
        raise SystemExit("the contention or consistency check failed (see above)")


if __name__ == "__main__":
    main()
