"""The staff accounts, keys and case keys the staff-path benchmark needs, on a database that
bench/cases_bench.py generated (a sibling module of bench/staff_bench.py, not a script).

cases_bench makes the triage officer it logs in as (TRIAGE_USERNAME / PASSWORD) and six
investigators; here the officer gets a registered public key and a content key (a
`case_keys` row sealed to that key) on every case of the key pool, and two more
accounts appear: an auditor (for /audit and /stats) and a second triage officer with a
registered key, the grantee of `POST /cases/{id}/grants`.
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.crypto import PrivateKey
from app.domain.staff import PasswordHashing, Role

AUDITOR_USERNAME = "bench-auditor-" + secrets.token_hex(3)
GRANTEE_USERNAME = "bench-grantee-" + secrets.token_hex(3)


@dataclass
class StaffSetup:
    triage_id: str
    triage_fingerprint: str
    grantee_fingerprint: str
    key_pool: list[str]  # unpurged cases past `received` the triage officer holds a key to


async def prepare_staff(engine: AsyncEngine, triage_username: str, password: str, key_cases: int) -> StaffSetup:
    hashing = PasswordHashing()
    now = datetime.now(UTC)
    triage_key = PrivateKey.generate().public_key
    grantee_key = PrivateKey.generate().public_key
    async with engine.begin() as connection:
        triage_id = await connection.scalar(
            text(
                "UPDATE staff_users SET public_key = :key, public_key_fingerprint = :fingerprint,"
                " public_key_registered_at = :now WHERE username = :username RETURNING id"
            ),
            {"key": triage_key.raw, "fingerprint": triage_key.fingerprint, "now": now, "username": triage_username},
        )
        for username, role, key in (
            (AUDITOR_USERNAME, Role.AUDITOR, None),
            (GRANTEE_USERNAME, Role.TRIAGE, grantee_key),
        ):
            await connection.execute(
                text(
                    "INSERT INTO staff_users (id, username, role, password_hash, is_active, failed_login_count,"
                    " public_key, public_key_fingerprint, public_key_registered_at, is_identity_custodian,"
                    " created_at, updated_at)"
                    " VALUES (:id, :username, :role, :hash, true, 0, :key, :fingerprint, :registered, false,"
                    " :now, :now)"
                ),
                {
                    "id": uuid.uuid4(), "username": username, "role": role.value, "hash": hashing.hash(password),
                    "key": key.raw if key else None, "fingerprint": key.fingerprint if key else None,
                    "registered": now if key else None, "now": now,
                },
            )
        # Cases past `received` (the transitions take the received ones), in a fixed
        # pseudo-random order: a content key sealed to the officer on each, pseudo-random
        # bytes of the real sealed size.
        pool = [
            str(row[0])
            for row in await connection.execute(
                text(
                    "SELECT id FROM cases WHERE state <> 'received' AND purged_on IS NULL"
                    " ORDER BY hashtextextended(id::text, 7) LIMIT :n"
                ),
                {"n": key_cases},
            )
        ]
        await connection.execute(
            text(
                "INSERT INTO case_keys (id, case_id, recipient_kind, staff_user_id, recipient_fingerprint,"
                " sealed_key, granted_by_id, granted_at)"
                " SELECT gen_random_uuid(), c, 'staff', :user, :fingerprint, :sealed, NULL, :now"
                " FROM unnest(CAST(:cases AS uuid[])) AS c"
            ),
            {"user": triage_id, "fingerprint": triage_key.fingerprint, "sealed": os.urandom(1168), "now": now,
             "cases": pool},
        )
    async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        await connection.execute(text("ANALYZE case_keys"))
        await connection.execute(text("ANALYZE staff_users"))
    return StaffSetup(str(triage_id), triage_key.fingerprint, grantee_key.fingerprint, pool)
