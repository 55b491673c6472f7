"""Drills benchmark: injections per second, and the scorecard and close of a campaign of
1,000 drill cases among 100,000 real ones, over real HTTP, loopback only, stops by itself.

    .venv/bin/python bench/drills_bench.py                            # embedded PostgreSQL
    .venv/bin/python bench/drills_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/drills_bench.py --real 5000 --repeats 1    # a quick look

It creates a database of its own on the server of `--database-url` (default: an embedded
PostgreSQL in a temporary folder), migrates it, generates `--real` cases with
cases_bench.py's generator (the queue of a three-year-old installation, in SQL), then seeds
a blind campaign of `--drill-cases` drill cases as handling would leave them (drill rows,
acknowledge and start_assessment history rows with their times, staff replies, sealed
keys) and 1,000 participant codes in seven cohorts with their decisions; likewise one
more campaign per `--close-runs`, to be closed. Then it starts `cleanwindow serve` on that
database and measures, interleaved `--repeats` times against the same-run baseline
`healthz`:

- inject: `POST /api/v1/drills/{id}/inject` (a coordinator's; the scenario's report through
  the intake path: Argon2id receipt, HPKE sealing, the campaign's row lock), into a campaign
  of its own so that the scored one stays at its size;
- submit: `POST /api/v1/reports`, an anonymous report through the same path, with a proof
  of work solved before the timed part: what an injection is compared with;
- scorecard (JSON and CSV): `GET /api/v1/drills/{id}/scorecard` on the seeded campaign,
  computed from the records each time (five set-wise queries);
- stats: `GET /api/v1/stats`, the supervisors' statistics over the real cases.

Then it closes each `--close-runs` campaign (freeze the scorecard, purge its cases, audit)
and quotes the median time. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases_bench import (  # noqa: E402  (sibling scripts, not a package)
    INVESTIGATORS,
    admin,
    create_staff,
    database_server,
    database_url_named,
    generate_cases,
    log,
    refuse_non_loopback_database,
)
from http_bench import (  # noqa: E402
    BASELINE,
    MAX_SOLVED_BITS,
    Prepared,
    Scenario,
    fixed,
    own_server,
    report_template,
    results_table,
    run_interleaved,
)

from app.db.migrations import upgrade_database  # noqa: E402
from app.domain import pow  # noqa: E402
from app.domain.clock import DEFAULT_TIMEZONE, organisation_date, organisation_zone  # noqa: E402
from app.domain.crypto import PrivateKey  # noqa: E402
from app.domain.staff import PasswordHashing, Role  # noqa: E402
from app.drills.library import library_scenarios  # noqa: E402
from app.drills.models import DrillCampaign  # noqa: E402
from app.staff.models import StaffUser  # noqa: E402

COORDINATOR = "bench-coordinator-" + secrets.token_hex(3)
SUPERVISOR = "bench-supervisor-" + secrets.token_hex(3)
PASSWORD = "benchmark passphrase " + secrets.token_hex(4)
CODES = 1_000
COHORTS = 7
POW_BITS = 8

# Handling as a drill's week leaves it: a fifth not yet acknowledged, a fifth acknowledged,
# the rest in assessment; replies to about a third; times within the first hours.
SEED_CASES_SQL = """
INSERT INTO cases (
    id, channel, category, org_unit, language, state, version, is_drill, drill_campaign_id,
    shown_as_drill, received_on, acknowledge_due_on, feedback_due_on, acknowledged_on,
    next_due_on, receipt_scheme, receipt_tag, reporter_public_key, sealed_report
)
SELECT gen_random_uuid(), 'employee', (CAST(:categories AS text[]))[1 + n % 3], 'welfare', 'ko',
       CASE n % 5 WHEN 0 THEN 'received' WHEN 1 THEN 'acknowledged' ELSE 'assessing' END,
       CASE n % 5 WHEN 0 THEN 1 WHEN 1 THEN 2 ELSE 3 END,
       true, CAST(:campaign AS uuid), false, CAST(:today AS date), CAST(:today AS date) + 7,
       (CAST(:today AS date) + 7 + interval '3 months')::date,
       CASE WHEN n % 5 <> 0 THEN CAST(:today AS date) END,
       CASE WHEN n % 5 = 0 THEN CAST(:today AS date) + 7
            ELSE (CAST(:today AS date) + 7 + interval '3 months')::date END,
       1, sha256(convert_to(gen_random_uuid()::text, 'UTF8')), CAST(:reporter_key AS bytea),
       decode(repeat('ab', 540), 'hex')
FROM generate_series(1, CAST(:count AS int)) AS n
"""

SEED_FACTS_SQL = [
    """
    INSERT INTO drill_cases (case_id, campaign_id, scenario, source, received_at)
    SELECT id, drill_campaign_id, 1 + (hashtext(id::text) & 1023) % 3,
           CASE WHEN hashtext(id::text) % 2 = 0 THEN 'injection' ELSE 'participant' END,
           CAST(:started AS timestamptz)
    FROM cases WHERE drill_campaign_id = CAST(:campaign AS uuid)
    """,
    """
    INSERT INTO case_transitions (id, case_id, version, action, from_state, to_state, actor_id, occurred_at)
    SELECT gen_random_uuid(), id, 2, 'acknowledge', 'received', 'acknowledged', CAST(:triage AS uuid),
           CAST(:started AS timestamptz) + (hashtext(id::text) & 255) * interval '1 minute'
    FROM cases WHERE drill_campaign_id = CAST(:campaign AS uuid) AND version >= 2
    """,
    """
    INSERT INTO case_transitions (id, case_id, version, action, from_state, to_state, actor_id, occurred_at)
    SELECT gen_random_uuid(), id, 3, 'start_assessment', 'acknowledged', 'assessing', CAST(:triage AS uuid),
           CAST(:started AS timestamptz) + (300 + (hashtext(id::text) & 255)) * interval '1 minute'
    FROM cases WHERE drill_campaign_id = CAST(:campaign AS uuid) AND version = 3
    """,
    """
    INSERT INTO case_messages (id, case_id, seq, author, staff_user_id, sent_on, sent_at, sealed_body, seal_format)
    SELECT gen_random_uuid(), id, 1, 'staff', CAST(:triage AS uuid), CAST(:today AS date),
           CAST(:started AS timestamptz) + interval '9 hours', decode(repeat('cd', 200), 'hex'), 2
    FROM cases WHERE drill_campaign_id = CAST(:campaign AS uuid) AND version = 3 AND hashtext(id::text) % 2 = 0
    """,
    """
    INSERT INTO case_keys (id, case_id, recipient_kind, staff_user_id, recipient_fingerprint, sealed_key)
    SELECT gen_random_uuid(), id, kind, CASE WHEN kind = 'staff' THEN CAST(:triage AS uuid) END,
           left(md5(kind), 39), decode(repeat('ef', 1200), 'hex')
    FROM cases, unnest(ARRAY['staff', 'recovery', 'reporter']) AS kind
    WHERE drill_campaign_id = CAST(:campaign AS uuid)
    """,
    """
    INSERT INTO drill_participant_codes (digest, campaign_id, cohort, scenario, used, decision)
    SELECT sha256(convert_to(gen_random_uuid()::text, 'UTF8')), CAST(:campaign AS uuid),
           'cohort-' || (n % :cohorts), 1 + n % 3, n % 4 <> 0,
           CASE n % 4 WHEN 1 THEN 'reported' WHEN 2 THEN 'no_report' END
    FROM generate_series(1, :codes) AS n
    """,
]


async def create_people(engine: AsyncEngine) -> None:
    hashing = PasswordHashing()
    async with async_sessionmaker(engine)() as session:
        session.add_all(
            StaffUser(username=name, role=role.value, password_hash=hashing.hash(PASSWORD))
            for name, role in ((COORDINATOR, Role.DRILL_COORDINATOR), (SUPERVISOR, Role.SUPERVISOR))
        )
        await session.commit()


async def new_campaign(engine: AsyncEngine, name: str, now: datetime) -> str:
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        coordinator_id = (
            await session.execute(text("SELECT id FROM staff_users WHERE username = :u"), {"u": COORDINATOR})
        ).scalar_one()
        scenarios = [
            {"number": number, "library": item["slug"], **{key: item[key] for key in ("title", "brief", "report", "expected")}}
            for number, item in enumerate(library_scenarios()[:3], start=1)
        ]
        campaign = DrillCampaign(
            id=uuid.uuid4(), name=name, starts_at=now - timedelta(days=2), ends_at=now + timedelta(days=5),
            blind=True, state="running", token_digest=os.urandom(32), scenarios=scenarios,
            created_by_id=coordinator_id, created_at=now, codes_issued=CODES, injections=0,
        )
        session.add(campaign)
        await session.commit()
        return str(campaign.id)


async def seed_campaign(engine: AsyncEngine, campaign: str, count: int, triage: str, now: datetime, today) -> None:
    started = now - timedelta(days=1)
    parameters = {
        "campaign": campaign, "count": count, "today": today, "started": started, "triage": triage,
        "categories": ["bribery", "hiring", "subsidies"], "reporter_key": PrivateKey.generate().public_key.raw,
        "codes": CODES, "cohorts": COHORTS,
    }
    async with engine.begin() as connection:
        await connection.execute(text(SEED_CASES_SQL), parameters)
        for statement in SEED_FACTS_SQL:
            await connection.execute(text(statement), parameters)


async def prepare(url: str, args: argparse.Namespace) -> dict:
    log("migrating with the Alembic migrations")
    await upgrade_database(url)
    engine = create_async_engine(url, hide_parameters=True)
    try:
        staff = await create_staff(engine)
        await create_people(engine)
        now = datetime.now(UTC)
        today = organisation_date(now, organisation_zone(os.environ.get("CLEANWINDOW_TIMEZONE", DEFAULT_TIMEZONE)))
        log(f"generating {args.real:,} cases in SQL")
        await generate_cases(engine, args.real, today, [staff[name] for name in INVESTIGATORS])
        triage = next(user_id for name, user_id in staff.items() if name not in INVESTIGATORS)
        scored = await new_campaign(engine, "scored drill", now)
        await seed_campaign(engine, scored, args.drill_cases, triage, now, today)
        closing = []
        for number in range(args.close_runs):
            campaign = await new_campaign(engine, f"drill to close {number + 1}", now)
            await seed_campaign(engine, campaign, args.drill_cases, triage, now, today)
            closing.append(campaign)
        injected = await new_campaign(engine, "injection target", now)
        async with engine.connect() as connection:
            counts = (
                await connection.execute(
                    text("SELECT count(*) FILTER (WHERE NOT is_drill), count(*) FILTER (WHERE drill_campaign_id = :c) FROM cases"),
                    {"c": scored},
                )
            ).one()
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as connection:
            await connection.execute(text("VACUUM (ANALYZE)"))
        return {"scored": scored, "closing": closing, "injected": injected, "real": counts[0], "drills": counts[1]}
    finally:
        await engine.dispose()


async def token(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    login = await client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def benchmark(base_url: str, prepared: dict, args: argparse.Namespace):
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        coordinator, supervisor = await token(client, COORDINATOR), await token(client, SUPERVISOR)
        scored, injected = prepared["scored"], prepared["injected"]
        card = (await client.get(f"/api/v1/drills/{scored}/scorecard", headers=coordinator)).json()
        if card["totals"]["drill_cases"] != prepared["drills"]:
            raise SystemExit(f"the scorecard counts {card['totals']['drill_cases']} drill cases, not {prepared['drills']}")
        template = await report_template(client)

        async def prepare_submissions(count: int) -> Prepared:
            bodies = []
            for _ in range(count):
                issued = (await client.post("/api/v1/intake/challenges")).json()
                if issued["difficulty"] > MAX_SOLVED_BITS:
                    raise SystemExit(f"the server asks for {issued['difficulty']} bits of proof of work")
                nonce = pow.solve(issued["challenge"], issued["difficulty"])
                bodies.append(json.dumps({**template, "pow": {"challenge": issued["challenge"], "nonce": nonce}}).encode())
            queue = iter(bodies)

            def submit(c: httpx.AsyncClient) -> Awaitable[httpx.Response]:
                return c.post("/api/v1/reports", content=next(queue), headers={"Content-Type": "application/json"})

            return Prepared(submit)

        def get(path: str, headers: dict[str, str]):
            return fixed(lambda c: c.get(path, headers=headers))

        csv_headers = {**coordinator, "Accept": "text/csv"}
        scenarios = {
            BASELINE: Scenario("healthz (baseline, no database)", args.requests, 200, fixed(lambda c: c.get("/healthz"))),
            "stats": Scenario(f"GET /stats ({prepared['real']:,} real cases)", args.requests, 200,
                              get("/api/v1/stats", supervisor)),
            "scorecard": Scenario(f"GET /drills/{{id}}/scorecard, JSON ({prepared['drills']:,} drill cases)",
                                  args.requests, 200, get(f"/api/v1/drills/{scored}/scorecard", coordinator)),
            "scorecard-csv": Scenario("GET /drills/{id}/scorecard, CSV", args.requests, 200,
                                      get(f"/api/v1/drills/{scored}/scorecard", csv_headers)),
            "submit": Scenario("submit: POST /reports (Argon2id + HPKE; baseline of inject)", args.inject_requests,
                               201, prepare_submissions),
            "inject": Scenario("inject: POST /drills/{id}/inject", args.inject_requests, 201,
                               fixed(lambda c: c.post(f"/api/v1/drills/{injected}/inject", json={}, headers=coordinator))),
        }
        results = await run_interleaved(
            client, scenarios, args.repeats, args.concurrency,
            on_round=lambda number: log(f"round {number} of {args.repeats}" if number else "warming up"),
        )
        closes = []
        for campaign in prepared["closing"]:
            started = time.perf_counter()
            closed = await client.post(f"/api/v1/drills/{campaign}/close", headers=coordinator)
            closes.append(time.perf_counter() - started)
            if closed.status_code != 200 or closed.json()["purged_cases"] != args.drill_cases:
                raise SystemExit(f"close: HTTP {closed.status_code}: {closed.text[:300]}")
        return results, closes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a loopback PostgreSQL server where the bench may create and drop a database")
    parser.add_argument("--real", type=int, default=100_000, help="real cases to generate (default 100,000)")
    parser.add_argument("--drill-cases", type=int, default=1_000, help="drill cases of the scored campaign (default 1,000)")
    parser.add_argument("--requests", type=int, default=40, help="scorecard, stats and healthz requests per run (default 40)")
    parser.add_argument("--inject-requests", type=int, default=20, help="injections and submissions per run (default 20)")
    parser.add_argument("--close-runs", type=int, default=3, help="campaigns of --drill-cases to close, one each (default 3)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not 1_000 <= args.real <= 10_000_000 or not 1 <= args.drill_cases <= 100_000:
        raise SystemExit("keep --real within 1000..10000000 and --drill-cases within 1..100000")
    if not 1 <= args.requests <= 10_000 or not 1 <= args.inject_requests <= 10_000 or not 1 <= args.repeats <= 50:
        raise SystemExit("keep --requests and --inject-requests within 1..10000 and --repeats within 1..50")
    if not 0 <= args.close_runs <= 20 or not 1 <= args.concurrency <= 64:
        raise SystemExit("keep --close-runs within 0..20 and --concurrency within 1..64")
    if args.database_url:
        refuse_non_loopback_database(args.database_url)

    with database_server(args.database_url) as server:
        name = f"cw_drills_bench_{secrets.token_hex(4)}"
        asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
        log(f"created database {name}")
        try:
            url = database_url_named(server, name)
            prepared = asyncio.run(prepare(url, args))
            with own_server(sys.executable, POW_BITS, extra_env={"DATABASE_URL": url}, create_admin=False) as base_url:
                results, closes = asyncio.run(benchmark(base_url, prepared, args))
        finally:
            asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"dropped database {name}")

    print(
        f"{prepared['real']:,} real cases, a blind campaign of {prepared['drills']:,} drill cases with {CODES:,} "
        f"participant codes in {COHORTS} cohorts; concurrency {args.concurrency}; {args.repeats} interleaved runs; "
        f"medians over runs (vs. baseline: requests/s divided by {BASELINE}'s in the same round)"
    )
    print()
    print("\n".join(results_table(results, BASELINE)))
    inject = statistics.median(r.requests_per_second for r in results["inject"][1])
    submit = statistics.median(r.requests_per_second for r in results["submit"][1])
    print()
    print(f"inject / submit: {inject / submit:.2f} (same intake path; the injection skips the proof of work)")
    if closes:
        print(
            f"close (freeze the scorecard, purge {args.drill_cases:,} drill cases, audit): median "
            f"{statistics.median(closes) * 1000:.0f} ms over {len(closes)} campaigns "
            f"({', '.join(f'{seconds * 1000:.0f}' for seconds in closes)} ms)"
        )
    if any(run.errors for _, runs in results.values() for run in runs):
        raise SystemExit("some requests failed (see the errors column)")


if __name__ == "__main__":
    main()
