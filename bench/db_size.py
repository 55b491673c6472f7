"""How much database a case costs, on generated cases as wide as real ones; and how long
a dump and a restore of it take. Loopback only, stops by itself.

    .venv/bin/python bench/db_size.py                                    # 100,000 cases, embedded PostgreSQL
    .venv/bin/python bench/db_size.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/db_size.py --cases 20000 --attachments 20      # a quick look

It creates a database of its own (`cw_size_<random>`), migrates it with the real
migrations, and fills it in SQL, deterministically:

- the cases of `bench/cases_bench.py`'s generator (three years of a queue: 88 % closed,
  a 540- or 1052-byte sealed report, a 1216-byte reporter public key);
- per case, what handling leaves behind (the assumptions, printed with the result):
  content keys sealed to the reporter, the recovery key and one triage officer, and a
  grant to the investigator of every assigned case (1168 bytes each, `case_keys`); one
  transition per step the case's state took (acknowledge, assess, accept or refer,
  close), half of them with a 60-character reason; one reporter message and, for 60 % of
  cases, a staff reply (one 540-byte padded seal each); audit entries: three case
  reads, each transition, the staff reply and the grant; for 10 % of cases a contact
  sealed apart (`case_identities`) with its identity key sealed to the reporter, the
  recovery key and one custodian;
- `--attachments` files of `--attachment-kib` each, sealed in 64 KiB chunks exactly as
  intake stores them (random bytes, as incompressible as ciphertext), on as many cases, to
  measure what a stored byte of attachment costs.

Then it runs VACUUM (ANALYZE) and prints, per table, rows, table (with TOAST) and index
bytes, and per case; times the audit chain's check over the whole (real) chain; times
`pg_dump --format=custom` at the default compression, then at levels 1 and 0, and
`pg_restore --single-transaction` into a second database, with the PostgreSQL 16
binaries pgserver bundles. Both databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases_bench import (  # noqa: E402  (a sibling script, not a package)
    INVESTIGATORS,
    admin,
    create_staff,
    database_server,
    database_url_named,
    generate_cases,
    refuse_non_loopback_database,
)

from app.audit.service import AuditLog  # noqa: E402
from app.db.migrations import upgrade_database  # noqa: E402
from app.domain.audit import GENESIS_HASH, AuditRecord, entry_hash  # noqa: E402
from app.domain.clock import DEFAULT_TIMEZONE, organisation_date, organisation_zone, utc_now  # noqa: E402
from app.domain.crypto import PrivateKey  # noqa: E402

SEALED_KEY = 1168
ONE_BLOCK_SEAL = 540  # a message or a contact under 512 bytes, padded and sealed
CHUNK = 65_536
SEAL_OVERHEAD = 28

# Deterministic pseudo-random bytes (sha256 blocks): as incompressible as ciphertext.
BYTES_FUNCTION = """
CREATE FUNCTION bench_bytes(seed bytea, length int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT substring(string_agg(sha256(seed || int4send(k)), ''::bytea ORDER BY k) FOR length)
    FROM generate_series(1, (length + 31) / 32) AS k
$$
"""

# How many steps a case in each state took (acknowledge, start_assessment, accept or
# refer, conclude or dismiss or close_referral).
STEPS = "CASE state WHEN 'received' THEN 0 WHEN 'acknowledged' THEN 1 WHEN 'assessing' THEN 2 " \
        "WHEN 'investigating' THEN 3 WHEN 'referred' THEN 3 ELSE 4 END"

FILL = [
    ("case keys: reporter, recovery, triage",
     f"""INSERT INTO case_keys (id, case_id, recipient_kind, staff_user_id, recipient_fingerprint, sealed_key)
         SELECT gen_random_uuid(), c.id, k.kind, CASE WHEN k.kind = 'staff' THEN CAST(:triage AS uuid) END,
                substring(encode(sha256(uuid_send(c.id) || convert_to(k.kind, 'UTF8')), 'hex') FOR 39),
                bench_bytes(uuid_send(c.id) || convert_to(k.kind, 'UTF8'), {SEALED_KEY})
         FROM cases c CROSS JOIN (VALUES ('reporter'), ('recovery'), ('staff')) AS k(kind)"""),
    ("case keys: grants to the assigned investigator",
     f"""INSERT INTO case_keys (id, case_id, recipient_kind, staff_user_id, recipient_fingerprint, sealed_key,
                                granted_by_id, granted_at)
         SELECT gen_random_uuid(), c.id, 'staff', c.assignee_id,
                substring(encode(sha256(uuid_send(c.id) || uuid_send(c.assignee_id)), 'hex') FOR 39),
                bench_bytes(uuid_send(c.id) || uuid_send(c.assignee_id), {SEALED_KEY}),
                CAST(:triage AS uuid), now()
         FROM cases c WHERE c.assignee_id IS NOT NULL"""),
    ("transitions",
     f"""INSERT INTO case_transitions (id, case_id, version, action, from_state, to_state, actor_id, occurred_at,
                                       reason, resolution, assignee_id)
         SELECT gen_random_uuid(), c.id, s.step + 1,
                (ARRAY['acknowledge', 'start_assessment', 'accept', 'conclude'])[s.step],
                (ARRAY['received', 'acknowledged', 'assessing', 'investigating'])[s.step],
                (ARRAY['acknowledged', 'assessing', 'investigating', 'closed'])[s.step],
                CAST(:triage AS uuid), c.received_on + s.step * 7 + time '10:00',
                CASE WHEN s.step % 2 = 0 THEN 'Documents requested from the permit office; see file.' END,
                CASE WHEN s.step = 4 THEN c.resolution END,
                CASE WHEN s.step = 3 THEN c.assignee_id END
         FROM cases c CROSS JOIN LATERAL generate_series(1, {STEPS.replace('state', 'c.state')}) AS s(step)"""),
    ("messages: one from the reporter, a reply on 60 %",
     f"""INSERT INTO case_messages (id, case_id, seq, author, staff_user_id, sent_on, sent_at, sealed_body, seal_format)
         SELECT gen_random_uuid(), c.id, m.seq, m.author, CASE WHEN m.author = 'staff' THEN CAST(:triage AS uuid) END,
                c.received_on + m.seq, CASE WHEN m.author = 'staff' THEN c.received_on + m.seq + time '11:00' END,
                bench_bytes(uuid_send(c.id) || int4send(m.seq), {ONE_BLOCK_SEAL}), 2
         FROM cases c CROSS JOIN (VALUES (1, 'reporter'), (2, 'staff')) AS m(seq, author)
         WHERE m.author = 'reporter' OR get_byte(uuid_send(c.id), 0) < 154"""),
    ("identities on 10 % of cases",
     f"""INSERT INTO case_identities (case_id, sealed_identity)
         SELECT c.id, bench_bytes(uuid_send(c.id) || '\\x01'::bytea, {ONE_BLOCK_SEAL})
         FROM cases c WHERE get_byte(uuid_send(c.id), 1) < 26"""),
    ("identity keys: reporter, recovery, custodian",
     f"""INSERT INTO identity_keys (id, case_id, holder_kind, staff_user_id, recipient_fingerprint, sealed_key)
         SELECT gen_random_uuid(), i.case_id, k.kind, CASE WHEN k.kind = 'custodian' THEN CAST(:triage AS uuid) END,
                substring(encode(sha256(uuid_send(i.case_id) || convert_to('i' || k.kind, 'UTF8')), 'hex') FOR 39),
                bench_bytes(uuid_send(i.case_id) || convert_to('i' || k.kind, 'UTF8'), {SEALED_KEY})
         FROM case_identities i CROSS JOIN (VALUES ('reporter'), ('recovery'), ('custodian')) AS k(kind)"""),
]

# What staff did to each case, as the audit chain records it: three reads, each
# transition, the staff reply, the grant.
AUDIT_EVENTS = f"""
SELECT case_id, action, details FROM (
    SELECT c.id AS case_id, 'case.read' AS action, '{{"content_key": true}}'::jsonb AS details, 1 AS o
    FROM cases c CROSS JOIN generate_series(1, 3)
    UNION ALL
    SELECT t.case_id, 'case.transition', jsonb_build_object(
        'action', t.action, 'from_state', t.from_state, 'to_state', t.to_state, 'version', t.version,
        'resolution', t.resolution, 'assignee', CASE WHEN t.assignee_id IS NOT NULL THEN '{INVESTIGATORS[0]}' END), 2
    FROM case_transitions t
    UNION ALL
    SELECT m.case_id, 'case.message', jsonb_build_object('message_id', m.id), 3
    FROM case_messages m WHERE m.author = 'staff'
    UNION ALL
    SELECT k.case_id, 'case.grant', jsonb_build_object('grantee', '{INVESTIGATORS[0]}', 'fingerprint',
                                                       k.recipient_fingerprint), 4
    FROM case_keys k WHERE k.granted_at IS NOT NULL
) AS events ORDER BY case_id, o
"""
INSERT_ENTRY = text(
    "INSERT INTO audit_log (seq, occurred_at, action, actor_id, actor_username, actor_role, case_id, details, "
    "prev_hash, hash) VALUES (:seq, :occurred_at, :action, :actor_id, :actor_username, :actor_role, :case_id, "
    "CAST(:details AS jsonb), :prev_hash, :hash)"
)
AUDIT_BATCH = 10_000

TABLES = ["cases", "case_keys", "case_transitions", "case_messages", "audit_log", "case_identities",
          "identity_keys", "case_attachments", "attachment_chunks"]


def log(message: str) -> None:
    print(f"[db_size {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pg_tool(name: str) -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)


def libpq_env(async_url: str) -> dict[str, str]:
    url = make_url(async_url)
    env = {**os.environ, "PGUSER": url.username or "postgres", "PGDATABASE": url.database or ""}
    host = url.host or url.query.get("host")
    if host:
        env["PGHOST"] = str(host)
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


async def fill(url: str, cases: int, attachments: int, attachment_kib: int, today: date) -> dict[str, float]:
    await upgrade_database(url)
    engine = create_async_engine(url, hide_parameters=True)
    timings: dict[str, float] = {}
    try:
        staff = await create_staff(engine)
        timings["cases"] = await generate_cases(engine, cases, today, [staff[name] for name in INVESTIGATORS])
        triage = next(user_id for name, user_id in staff.items() if name not in INVESTIGATORS)
        async with engine.begin() as connection:
            await connection.execute(text(BYTES_FUNCTION))
        for label, statement in FILL:
            started = time.perf_counter()
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), {"triage": triage})
            timings[label] = time.perf_counter() - started
            log(f"{label}: {result.rowcount:,} rows ({timings[label]:.0f} s)")
        started = time.perf_counter()
        entries = await add_audit_chain(engine, uuid.UUID(triage))
        log(f"audit chain: {entries:,} entries, hashed as the service hashes them ({time.perf_counter() - started:.0f} s)")
        async with engine.begin() as connection:
            await add_attachments(connection, attachments, attachment_kib)
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as connection:
            await connection.execute(text("DROP FUNCTION bench_bytes"))
            await connection.execute(text("VACUUM (ANALYZE)"))
            try:
                await connection.execute(text("CHECKPOINT"))
            except Exception as error:  # noqa: BLE001  (not a superuser: sizes are the same)
                log(f"no checkpoint ({type(error).__name__})")
    finally:
        await engine.dispose()
    return timings


async def add_audit_chain(engine, actor_id: uuid.UUID) -> int:
    """A real chain (each entry hashed over the previous one, as `AuditLog.append` does)
    and its head, so that the check below walks and hashes what a service would."""
    occurred_at = utc_now()
    seq, running = 0, GENESIS_HASH
    async with engine.connect() as reader, engine.connect() as writer:
        batch: list[dict] = []
        async for case_id, action, details in await reader.stream(text(AUDIT_EVENTS)):
            seq += 1
            record = AuditRecord(occurred_at=occurred_at, action=action, actor_id=actor_id,
                                 actor_username="size-triage", actor_role="triage", case_id=case_id, details=details)
            digest = entry_hash(running, seq, record)
            batch.append({"seq": seq, "occurred_at": occurred_at, "action": action, "actor_id": actor_id,
                          "actor_username": "size-triage", "actor_role": "triage", "case_id": case_id,
                          "details": json.dumps(details), "prev_hash": running, "hash": digest})
            running = digest
            if len(batch) == AUDIT_BATCH:
                await writer.execute(INSERT_ENTRY, batch)
                await writer.commit()
                batch = []
        if batch:
            await writer.execute(INSERT_ENTRY, batch)
        # The head only ever advances by one entry (its trigger); this scratch database's
        # chain was written around it, so the trigger is set aside to point it at the end.
        await writer.execute(text("ALTER TABLE audit_head DISABLE TRIGGER audit_head_only_advances"))
        await writer.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
                             {"seq": seq, "hash": running})
        await writer.execute(text("ALTER TABLE audit_head ENABLE TRIGGER audit_head_only_advances"))
        await writer.commit()
    return seq


async def add_attachments(connection: AsyncConnection, count: int, kib: int) -> None:
    """Files sealed as intake stores them: full chunks unpadded, the last one padded to
    the next 512 bytes; random bytes, since ciphertext is."""
    size = kib * 1024
    full, rest = divmod(size, CHUNK)
    lengths = [CHUNK] * full + ([rest] if rest else [])
    last_padded = (lengths[-1] // 512 + 1) * 512
    stored = [length + SEAL_OVERHEAD for length in lengths[:-1]] + [last_padded + SEAL_OVERHEAD]
    case_ids = [row[0] for row in await connection.execute(text("SELECT id FROM cases ORDER BY id LIMIT :n"), {"n": count})]
    for case_id in case_ids:
        attachment_id = uuid.uuid4()
        await connection.execute(
            text("INSERT INTO case_attachments (id, case_id, author, uploaded_on, stored_bytes, chunk_bytes, chunk_count, "
                 "sealed_meta) VALUES (:id, :case_id, 'reporter', current_date, :stored, :chunk, :chunks, :meta)"),
            {"id": attachment_id, "case_id": case_id, "stored": sum(stored), "chunk": CHUNK, "chunks": len(stored),
             "meta": os.urandom(ONE_BLOCK_SEAL)},
        )
        await connection.execute(
            text("INSERT INTO attachment_chunks (attachment_id, index, sealed) VALUES (:id, :index, :sealed)"),
            [{"id": attachment_id, "index": index, "sealed": os.urandom(length)} for index, length in enumerate(stored)],
        )
    log(f"attachments: {len(case_ids):,} of {kib:,} KiB ({sum(stored) * len(case_ids) / 2**20:.0f} MiB stored)")


async def sizes(url: str) -> list[dict[str, int | str]]:
    engine = create_async_engine(url, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            rows = []
            for table in TABLES:
                row = (await connection.execute(text(
                    f"SELECT (SELECT count(*) FROM {table}) AS rows_, pg_table_size('{table}') AS heap, "
                    f"pg_indexes_size('{table}') AS indexes, pg_total_relation_size('{table}') AS total"
                ))).one()
                rows.append({"table": table, "rows": row.rows_, "heap": row.heap, "indexes": row.indexes, "total": row.total})
            indexes = (await connection.execute(text(
                "SELECT relname, indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                "WHERE relname = ANY(:tables) ORDER BY 3 DESC"
            ), {"tables": TABLES[:7]})).all()
            database = await connection.scalar(text("SELECT pg_database_size(current_database())"))
            stored = await connection.scalar(text("SELECT coalesce(sum(stored_bytes), 0) FROM case_attachments"))
            rows.append({"table": "(whole database)", "rows": 0, "heap": 0, "indexes": 0, "total": database,
                         "attachment_bytes": stored, "index_sizes": [tuple(row) for row in indexes]})
            return rows
    finally:
        await engine.dispose()


async def verification_cost(url: str) -> dict[str, float]:
    """The daily chain check (`audit.verify`, `GET /api/v1/audit/verify`) as the service
    runs it, over the whole generated chain."""
    engine = create_async_engine(url, hide_parameters=True)
    try:
        async with engine.connect() as connection, AsyncSession(bind=connection) as session:
            started_wall, started_cpu = time.perf_counter(), time.process_time()
            walked = await AuditLog(session).verify()
            wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    finally:
        await engine.dispose()
    if not walked.ok:
        raise SystemExit(f"the generated chain does not verify at entry {walked.first_bad} (a bench bug)")
    return {"entries": walked.entries, "wall_per_entry": wall / walked.entries, "cpu_per_entry": cpu / walked.entries}


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{Path(command[0]).name} failed: {result.stderr.strip()}")
    return time.perf_counter() - started


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def report(rows: list[dict], cases: int, attachments: int, dump: tuple[float, int],
           other_dumps: dict[str, tuple[float, int]],
           restore_seconds: float, verification: dict[str, float]) -> str:
    dump_seconds, dump_bytes = dump
    by_table = {row["table"]: row for row in rows}
    lines = ["| table | rows | rows per case | table MiB (with TOAST) | indexes MiB | total MiB | bytes per case |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    without_files = 0
    for table in TABLES:
        row = by_table[table]
        per_case = row["total"] / cases
        if table not in ("case_attachments", "attachment_chunks"):
            without_files += row["total"]
        lines.append(f"| `{table}` | {row['rows']:,} | {row['rows'] / cases:.2f} | {mib(row['heap'])} | "
                     f"{mib(row['indexes'])} | {mib(row['total'])} | "
                     f"{per_case:,.0f}{' (sample, below)' if table in ('case_attachments', 'attachment_chunks') else ''} |")
    whole = by_table["(whole database)"]
    files = by_table["case_attachments"]["total"] + by_table["attachment_chunks"]["total"]
    stored = whole["attachment_bytes"]
    lines += [
        "",
        f"- a case without files, all its rows and their indexes: **{without_files / cases:,.0f} bytes** "
        f"({mib(without_files)} MiB for {cases:,} cases)",
        f"- of which indexes: {sum(by_table[t]['indexes'] for t in TABLES[:7]) / cases:,.0f} bytes per case; "
        f"`cases`' own indexes {by_table['cases']['indexes'] / cases:,.0f}",
        f"- attachments: {attachments:,} files, {mib(stored)} MiB of sealed chunks stored in {mib(files)} MiB "
        f"(x {files / stored:.3f})" if stored else "- attachments: none generated",
        f"- whole database {mib(whole['total'])} MiB",
        f"- `pg_dump --format=custom` (gzip at its default level): {dump_seconds:.1f} s, {mib(dump_bytes)} MiB "
        f"({dump_bytes / whole['total']:.2f} of the database: indexes are rebuilt, not dumped)",
        *(f"- `pg_dump --format=custom --compress={level}`: {seconds:.1f} s, {mib(size)} MiB "
          + ("(bytea is dumped as hex text: twice the ciphertext)" if level == "0" else "")
          for level, (seconds, size) in other_dumps.items()),
        f"- `pg_restore --single-transaction` into a new database: {restore_seconds:.1f} s",
        "- the largest indexes, bytes per case: " + ", ".join(
            f"`{name}` {size / cases:,.0f}" for _, name, size in whole["index_sizes"][:8]
        ),
        "- `cases`' indexes, bytes per case: " + ", ".join(
            f"`{name}` {size / cases:,.0f}" for table, name, size in whole["index_sizes"] if table == "cases"
        ),
        f"- the audit chain's check (`audit.verify`, `GET /audit/verify`) over {verification['entries']:,} entries: "
        f"{verification['entries'] * verification['wall_per_entry']:.1f} s, "
        f"{verification['wall_per_entry'] * 1e6:.1f} µs per entry "
        f"({verification['cpu_per_entry'] * 1e6:.1f} µs of the checking process's CPU)",
    ]
    return "\n".join(lines)


def stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # the finally below drops the databases


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a loopback PostgreSQL server where the bench may create and drop "
                        "databases (e.g. postgresql://postgres@127.0.0.1:5432/postgres); default: an embedded one")
    parser.add_argument("--cases", type=int, default=100_000, help="cases to generate (default 100,000)")
    parser.add_argument("--attachments", type=int, default=100, help="files to store (default 100)")
    parser.add_argument("--attachment-kib", type=int, default=1024, help="size of each file (default 1024 KiB)")
    args = parser.parse_args()
    if not 1_000 <= args.cases <= 10_000_000:
        raise SystemExit("keep --cases within 1000..10000000")
    if not 0 <= args.attachments <= min(args.cases, 10_000) or not 1 <= args.attachment_kib <= 20 * 1024:
        raise SystemExit("keep --attachments within 0..min(cases, 10000) and --attachment-kib within 1..20480")
    if args.database_url:
        refuse_non_loopback_database(args.database_url)
    PrivateKey.generate()  # fails early if the crypto backend is missing
    today = organisation_date(utc_now(), organisation_zone(os.environ.get("CLEANWINDOW_TIMEZONE", DEFAULT_TIMEZONE)))

    with database_server(args.database_url) as server, tempfile.TemporaryDirectory(prefix="cw-size-") as folder:
        source, target = f"cw_size_{secrets.token_hex(4)}", f"cw_size_restored_{secrets.token_hex(4)}"
        asyncio.run(admin(server, f'CREATE DATABASE "{source}"'))
        log(f"created database {source}")
        try:
            url = database_url_named(server, source)
            asyncio.run(fill(url, args.cases, args.attachments, args.attachment_kib, today))
            rows = asyncio.run(sizes(url))
            log("timing the audit chain's check")
            verification = asyncio.run(verification_cost(url))
            dump_file, plain_file = Path(folder) / "size.dump", Path(folder) / "size-other.dump"
            log("pg_dump --format=custom")
            dump_seconds = timed([pg_tool("pg_dump"), "--format=custom", f"--file={dump_file}"], libpq_env(url))
            other_dumps = {}
            for level in ("1", "0"):
                log(f"pg_dump --format=custom --compress={level}")
                seconds = timed(
                    [pg_tool("pg_dump"), "--format=custom", f"--compress={level}", f"--file={plain_file}"],
                    libpq_env(url),
                )
                other_dumps[level] = (seconds, plain_file.stat().st_size)
            asyncio.run(admin(server, f'CREATE DATABASE "{target}"'))
            log(f"created database {target}")
            log("pg_restore --single-transaction")
            restore_seconds = timed(
                [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
                 f"--dbname={target}", str(dump_file)],
                libpq_env(database_url_named(server, target)),
            )
            dump_size = dump_file.stat().st_size
        finally:
            asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)',
                              f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
            log(f"dropped database {source}")
            log(f"dropped database {target}")
    print(report(rows, args.cases, args.attachments, (dump_seconds, dump_size), other_dumps,
                 restore_seconds, verification))


if __name__ == "__main__":
    main()
