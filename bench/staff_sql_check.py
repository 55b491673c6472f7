"""Checks that bench/staff_ceiling.py sends the product's SQL, statement for statement, and
answers the same JSON, on a small generated database; prints each path's statements.

    .venv/bin/python bench/staff_sql_check.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Both apps run in this process over ASGI (no HTTP): the product as `create_app` builds it,
its statements caught by a SQLAlchemy `before_cursor_execute` listener; the ceiling with
an asyncpg query logger on each connection. For each staff path it sends one request to
each and compares the statement lists (whitespace aside; the ceiling's BEGIN and COMMIT,
which SQLAlchemy sends outside the cursor, left out) and, for the read paths, the JSON.
Writes go to two different cases of the same kind, so their JSON differs by design; their
statements must not. Exit status 1 on any difference. Loopback only; the database is
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases_bench  # noqa: E402  (sibling scripts, not a package)
from staff_ceiling import create_ceiling  # noqa: E402
from staff_setup import AUDITOR_USERNAME, GRANTEE_USERNAME, prepare_staff  # noqa: E402

from app.db.session import build_sessionmaker  # noqa: E402
from app.domain import crypto  # noqa: E402
from app.domain.clock import DEFAULT_TIMEZONE, organisation_date, organisation_zone, utc_now  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

READS = ("queue", "detail", "detail-assigned", "history", "audit", "stats")
WRITES = ("transition", "message", "grant")
TRANSACTION_CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)


RETURNING = re.compile(r" RETURNING (.*)$")


def normal(statement: str) -> str:
    """Whitespace aside; and a RETURNING list sorted, since the product's order of it varies
    from one process to the next (SQLAlchemy renders that DELETE's columns from a set)."""
    text = " ".join(statement.split())
    returning = RETURNING.search(text)
    if returning:
        text = text[: returning.start()] + " RETURNING " + ", ".join(sorted(returning.group(1).split(", ")))
    return text


async def compare(url: str, cases: int) -> dict[str, dict[str, Any]]:
    """Path -> {"product": statements, "ceiling": statements, "same_sql", "same_json"}."""
    today = organisation_date(utc_now(), organisation_zone(DEFAULT_TIMEZONE))
    await cases_bench.prepare_database(url, argparse.Namespace(cases=cases), today)
    engine = create_async_engine(url)
    try:
        setup = await prepare_staff(engine, cases_bench.TRIAGE_USERNAME, cases_bench.PASSWORD, 20)
        async with engine.connect() as connection:
            # A case with an investigator and a staff message by someone else: the detail's
            # conditional statements (the assignee's and the authors' names).
            row = (await connection.execute(text(
                "SELECT id FROM cases WHERE assignee_id IS NOT NULL AND purged_on IS NULL ORDER BY id LIMIT 1"
            ))).one()
            # Two open cases awaiting feedback: a staff message gives it, so the message
            # path's conditional UPDATE of the case is compared too.
            awaiting = [str(found[0]) for found in await connection.execute(text(
                "SELECT id FROM cases WHERE acknowledged_on IS NOT NULL AND feedback_given_on IS NULL"
                " AND state <> 'closed' AND purged_on IS NULL AND id <> ALL(CAST(:pool AS uuid[]))"
                " ORDER BY id LIMIT 2"
            ), {"pool": setup.key_pool})]
        if len(awaiting) != 2:
            raise SystemExit("the generated queue has no two open cases awaiting feedback (a bench bug)")
        assigned_case = str(row[0])
        async with engine.begin() as connection:
            for keyed_case in (assigned_case, *awaiting):
                await connection.execute(text(
                    "INSERT INTO case_keys (id, case_id, recipient_kind, staff_user_id, recipient_fingerprint,"
                    " sealed_key, granted_at) VALUES (gen_random_uuid(), :case, 'staff', :user, :fingerprint,"
                    " :sealed, now()) ON CONFLICT DO NOTHING"
                ), {"case": keyed_case, "user": setup.triage_id, "fingerprint": setup.triage_fingerprint,
                    "sealed": bytes(crypto.SEALED_CONTENT_KEY_BYTES)})
            await connection.execute(text(
                "INSERT INTO case_messages (id, case_id, seq, author, staff_user_id, sent_on, sent_at, sealed_body,"
                " seal_format) SELECT gen_random_uuid(), :case, 1, 'staff', id, current_date, now(), :body, 2"
                " FROM staff_users WHERE username = :someone"
            ), {"case": assigned_case, "body": bytes(100), "someone": cases_bench.INVESTIGATORS[1]})

        product_log: list[str] = []
        ceiling_log: list[str] = []

        def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
            product_log.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        settings = Settings().with_database_url(url)
        product = create_app(settings, sessionmaker=build_sessionmaker(engine))
        ceiling = create_ceiling(settings, statements=ceiling_log)
        results: dict[str, dict[str, Any]] = {}
        async with (
            ceiling.router.lifespan_context(ceiling),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=product), base_url="http://product") as p,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=ceiling), base_url="http://ceiling") as c,
        ):
            tokens = {}
            for username in (cases_bench.TRIAGE_USERNAME, AUDITOR_USERNAME):
                login = await p.post("/api/v1/auth/token", data={"username": username, "password": cases_bench.PASSWORD})
                login.raise_for_status()
                tokens[username] = {"Authorization": f"Bearer {login.json()['access_token']}"}
            triage, auditor = tokens[cases_bench.TRIAGE_USERNAME], tokens[AUDITOR_USERNAME]
            # Cases of one kind for each write, so that both sides take the same branch:
            # received cases whose feedback_due_on acknowledging today moves (months clamp
            # at their end: the 28th to the 30th of November all give 28 February), and
            # the two open cases awaiting feedback found above (a message gives it).
            async with engine.connect() as connection:
                received = [str(row[0]) for row in await connection.execute(text(
                    "SELECT id FROM cases WHERE state = 'received' AND (acknowledge_due_on + interval '3 months')::date"
                    " <> (CAST(:today AS date) + interval '3 months')::date ORDER BY id LIMIT 3"
                ), {"today": today})]
            history_case = received.pop()
            (await p.post(f"/api/v1/cases/{history_case}/transitions", headers=triage,
                          json={"action": "acknowledge", "expected_version": 1})).raise_for_status()
            keyed = list(setup.key_pool)  # the triage officer's keys; the grantee holds none yet
            detail_case = keyed.pop()
            message_cases = list(awaiting)

            def send(path: str, client: httpx.AsyncClient):
                if path == "queue":
                    return client.get("/api/v1/cases", params={"limit": "50"}, headers=triage)
                if path in ("detail", "detail-assigned"):
                    case = detail_case if path == "detail" else assigned_case
                    return client.get(f"/api/v1/cases/{case}", headers=triage)
                if path == "history":
                    return client.get(f"/api/v1/cases/{history_case}/history", headers=triage)
                if path == "audit":
                    return client.get("/api/v1/audit", headers=auditor)
                if path == "stats":
                    return client.get("/api/v1/stats", headers=auditor)
                if path == "transition":
                    return client.post(f"/api/v1/cases/{received.pop()}/transitions", headers=triage,
                                       json={"action": "acknowledge", "expected_version": 1})
                if path == "message":
                    return client.post(f"/api/v1/cases/{message_cases.pop()}/messages", headers=triage, json={
                        "id": str(uuid.uuid4()), "sealed_body": crypto.b64url_encode(bytes(540)), "seal_format": 2})
                if path == "grant":
                    return client.post(f"/api/v1/cases/{keyed.pop()}/grants", headers=triage, json={
                        "grantee": GRANTEE_USERNAME, "fingerprint": setup.grantee_fingerprint,
                        "sealed_key": crypto.b64url_encode(bytes(crypto.SEALED_CONTENT_KEY_BYTES))})
                raise ValueError(path)

            for path in READS + WRITES:
                product_log.clear()
                from_product = await send(path, p)
                ceiling_log.clear()
                from_ceiling = await send(path, c)
                product_sql = [normal(s) for s in product_log]
                ceiling_sql = [normal(s) for s in ceiling_log if not TRANSACTION_CONTROL.match(s.strip())]
                results[path] = {
                    "status": (from_product.status_code, from_ceiling.status_code),
                    "product": product_sql,
                    "ceiling": ceiling_sql,
                    "same_sql": product_sql == ceiling_sql,
                    "same_json": from_product.json() == from_ceiling.json() if path in READS else None,
                }
            verified = (await p.get("/api/v1/audit/verify", headers=auditor)).json()
            results["audit-verify"] = {"ok": verified["ok"], "entries": verified["entries"]}
        return results
    finally:
        await engine.dispose()


def report(results: dict[str, dict[str, Any]], verbose: bool) -> tuple[list[str], bool]:
    lines, ok = [], True
    for path, result in results.items():
        if path == "audit-verify":
            lines.append(f"audit chain after both: {'verifies' if result['ok'] else 'BROKEN'} ({result['entries']} entries)")
            ok &= result["ok"]
            continue
        good = result["same_sql"] and result["same_json"] is not False and len(set(result["status"])) == 1
        ok &= good
        json_note = {True: ", same JSON", False: ", JSON DIFFERS", None: ""}[result["same_json"]]
        lines.append(
            f"{path}: {len(result['product'])} statements, {'same SQL' if result['same_sql'] else 'SQL DIFFERS'}"
            f"{json_note}; HTTP {result['status'][0]} / {result['status'][1]}"
        )
        if verbose or not result["same_sql"]:
            width = max(len(result["product"]), len(result["ceiling"]))
            for n in range(width):
                a = result["product"][n] if n < len(result["product"]) else "(none)"
                b = result["ceiling"][n] if n < len(result["ceiling"]) else "(none)"
                lines.append(f"    {n + 1}. {a[:160]}")
                if a != b:
                    lines.append(f"       ceiling: {b[:160]}")
    return lines, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a loopback PostgreSQL server where it may create and drop a "
                        "database; default: an embedded one")
    parser.add_argument("--cases", type=int, default=2000, help="cases to generate (default 2000)")
    parser.add_argument("--verbose", action="store_true", help="print every statement")
    args = parser.parse_args()
    if args.database_url:
        cases_bench.refuse_non_loopback_database(args.database_url)
    with cases_bench.database_server(args.database_url) as server:
        name = f"cw_sqlcheck_{secrets.token_hex(4)}"
        asyncio.run(cases_bench.admin(server, f'CREATE DATABASE "{name}"'))
        try:
            results = asyncio.run(compare(cases_bench.database_url_named(server, name), args.cases))
        finally:
            asyncio.run(cases_bench.admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    lines, ok = report(results, args.verbose)
    print("\n".join(lines))
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
