"""The service's own database role: what it may do, granted by the owner after migrating.

The schema belongs to the role that migrates it (the owner). The web replicas and the
workers connect as another role, which owns nothing: a role that owns `audit_log` can drop
or disable the trigger that keeps the log append-only, and can drop or alter any table it
owns. `grant_service_role` (`cleanwindow db upgrade --grant-to ROLE`, `cleanwindow db grant
ROLE`) gives that role exactly what the service and the worker use, read from the catalog
at the time it runs, and takes back anything else it was given directly:

- USAGE on the schema (never CREATE);
- SELECT, INSERT, UPDATE, DELETE on every table, except the few in `TABLE_EXCEPTIONS`,
  and never TRUNCATE, REFERENCES or TRIGGER;
- USAGE on the sequences of the tables it may insert into (procrastinate's ids: `nextval`);
- EXECUTE on the job queue's functions (procrastinate's worker calls them), nothing on
  the schema's trigger functions (a trigger runs without its caller holding EXECUTE).

It runs in the caller's transaction (after the migration, in the same one, for
`db upgrade --grant-to`), under the migration lock, and changes nothing a second time.
It refuses, and the caller's transaction rolls back, a role that does not exist, is a
superuser, has CREATEROLE, owns (or is a member of a role that owns) the database, the
schema or anything in it, or can still do more than the list above through PUBLIC or
another role it belongs to.

Explicit grants re-run by each migration, not `ALTER DEFAULT PRIVILEGES`: default
privileges would hand a new table the full four to the service the moment a migration
creates it, before anyone has said whether it is append-only like the audit log; they
apply only to objects created by the role that set them; they revoke nothing; and they
live in the catalog, not in this file, where a reviewer reads the exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.migrations import JOB_QUEUE_PREFIX, MIGRATION_LOCK_KEY

SERVICE_TABLE_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})

# The tables the service uses in fewer ways than the rest, and why. Every other table in
# the schema gets SERVICE_TABLE_PRIVILEGES. A new table that must not be changed by the
# service belongs here in the migration's own commit.
TABLE_EXCEPTIONS: Mapping[str, frozenset[str]] = {
    # Append-only: entries are inserted (staff acts, the retention purge, the counted
    # hours) and read (the log's pages, verification), never changed. The trigger refuses
    # changes too; this keeps them refused if the trigger were ever gone.
    "audit_log": frozenset({"SELECT", "INSERT"}),
    # The chain's head: one row made by the migration, locked (`SELECT ... FOR UPDATE`
    # needs UPDATE) and advanced by every append; never inserted or deleted.
    "audit_head": frozenset({"SELECT", "UPDATE"}),
    # The receipt salt, made once by the migration: every receipt's lookup tag depends on
    # it, so a changed salt would lock every reporter out of their report.
    "installation": frozenset({"SELECT"}),
    # The schema's revision: read to check that the schema is this version's; only
    # migrations, run by the owner, write it.
    "alembic_version": frozenset({"SELECT"}),
    # Which code revisions may run on each schema revision (`/readyz` reads it); written
    # by the migrations only, so the service cannot declare itself compatible.
    "schema_compatibility": frozenset({"SELECT"}),
}

SCHEMA_PRIVILEGES = frozenset({"USAGE"})
SEQUENCE_PRIVILEGES = frozenset({"USAGE"})  # nextval, currval; not setval (UPDATE)
FUNCTION_PRIVILEGES = frozenset({"EXECUTE"})

_TABLE_KINDS = ("r", "p", "v", "m", "f")
_ALL_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
_COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
_ALL_SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")


class RoleRefused(Exception):
    """The role cannot be the service's role, or the privileges cannot be made exact;
    the message is one line, for the operator."""


def table_privileges(table: str) -> frozenset[str]:
    return TABLE_EXCEPTIONS.get(table, SERVICE_TABLE_PRIVILEGES)


@dataclass(frozen=True)
class _Object:
    kind: str  # as GRANT names it: SCHEMA, TABLE, SEQUENCE, ROUTINE
    sql_name: str  # quoted and qualified
    expected: frozenset[str]
    current: frozenset[str]
    grantable: frozenset[str]

    @classmethod
    def of(cls, kind: str, sql_name: str, expected: frozenset[str], acl_row: Any) -> _Object:
        return cls(kind, sql_name, expected, frozenset(acl_row.current), frozenset(acl_row.grantable))

    def statements(self, role: str) -> list[str]:
        on = f"ON {self.kind} {self.sql_name}"
        result = []
        if extra := self.current - self.expected:
            result.append(f"REVOKE {', '.join(sorted(extra))} {on} FROM {role} CASCADE")
        if options := self.grantable & self.expected:
            result.append(f"REVOKE GRANT OPTION FOR {', '.join(sorted(options))} {on} FROM {role} CASCADE")
        if missing := self.expected - self.current:
            result.append(f"GRANT {', '.join(sorted(missing))} {on} TO {role}")
        return result


@dataclass
class PrivilegeChanges:
    """What `grant_service_role` found and did."""

    role: str
    tables: int = 0
    sequences: int = 0
    functions: int = 0
    statements: list[str] = field(default_factory=list)

    def summary(self) -> str:
        scope = f"{self.tables} tables, {self.sequences} sequences, {self.functions} functions"
        if not self.statements:
            return f"role {self.role!r} already has exactly the service's privileges ({scope})"
        done = f"{len(self.statements)} statements"
        return f"role {self.role!r} now has exactly the service's privileges ({scope}; {done})"


# The role's own grants on an object (aclexplode of its ACL): privilege names, and those
# it may pass on.
_OWN = """
    coalesce((SELECT array_agg(a.privilege_type::text) FROM aclexplode({acl}) a
              WHERE a.grantee = CAST(:role AS oid)), '{{}}') AS current,
    coalesce((SELECT array_agg(a.privilege_type::text) FROM aclexplode({acl}) a
              WHERE a.grantee = CAST(:role AS oid) AND a.is_grantable), '{{}}') AS grantable
"""

_ROLE = text("SELECT oid, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = :name")
_SCHEMA = text("SELECT oid, nspname FROM pg_namespace WHERE nspname = current_schema()")
# Whatever the role owns, or could act as the owner of, that the service depends on.
_OWNED = text(
    """
    SELECT kind, name FROM (
        SELECT 1 AS rank, 'database' AS kind, datname::text AS name, datdba AS owner
          FROM pg_database WHERE datname = current_database()
        UNION ALL SELECT 2, 'schema', nspname::text, nspowner FROM pg_namespace WHERE oid = CAST(:schema AS oid)
        UNION ALL SELECT 3, 'table', relname::text, relowner FROM pg_class WHERE relnamespace = CAST(:schema AS oid)
        UNION ALL SELECT 4, 'function', proname::text, proowner FROM pg_proc WHERE pronamespace = CAST(:schema AS oid)
        UNION ALL SELECT 5, 'type', typname::text, typowner FROM pg_type WHERE typnamespace = CAST(:schema AS oid)
    ) owned
    WHERE pg_has_role(CAST(:role AS oid), owner, 'MEMBER')
    ORDER BY rank, name LIMIT 1
    """
)
_SCHEMA_ACL = text(f"SELECT {_OWN.format(acl='nspacl')} FROM pg_namespace WHERE oid = CAST(:schema AS oid)")
_TABLES = text(
    f"""
    SELECT relname, {_OWN.format(acl='relacl')} FROM pg_class
    WHERE relnamespace = CAST(:schema AS oid) AND relkind::text = ANY(CAST(:kinds AS text[])) ORDER BY relname
    """
)
_COLUMN_GRANTS = text(
    """
    SELECT c.relname, a.attname, x.privilege_type::text AS privilege
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, aclexplode(a.attacl) x
    WHERE c.relnamespace = CAST(:schema AS oid) AND a.attacl IS NOT NULL AND x.grantee = CAST(:role AS oid)
    ORDER BY 1, 2, 3
    """
)
# Each sequence with the table whose column it numbers (serial or identity), if any.
_SEQUENCES = text(
    f"""
    SELECT s.relname, t.relname AS owning_table, {_OWN.format(acl='s.relacl')}
    FROM pg_class s
    LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    LEFT JOIN pg_class t ON t.oid = d.refobjid
    WHERE s.relnamespace = CAST(:schema AS oid) AND s.relkind = 'S' ORDER BY s.relname
    """
)
_FUNCTIONS = text(
    f"""
    SELECT p.oid::regprocedure::text AS signature, p.proname,
           p.prorettype = 'trigger'::regtype AS is_trigger, {_OWN.format(acl='p.proacl')}
    FROM pg_proc p WHERE p.pronamespace = CAST(:schema AS oid) ORDER BY 1
    """
)
# What the role can do in the end, however it came by it (directly, PUBLIC, membership).
_EFFECTIVE_TABLES = text(
    """
    SELECT c.relname, p.privilege FROM pg_class c, unnest(CAST(:privileges AS text[])) AS p(privilege)
    WHERE c.relnamespace = CAST(:schema AS oid) AND c.relkind::text = ANY(CAST(:kinds AS text[]))
      AND CASE WHEN p.privilege = ANY(CAST(:column_privileges AS text[]))
               THEN has_any_column_privilege(CAST(:role AS oid), c.oid, p.privilege)
               ELSE has_table_privilege(CAST(:role AS oid), c.oid, p.privilege) END
    """
)
_EFFECTIVE_SEQUENCES = text(
    """
    SELECT c.relname, p.privilege FROM pg_class c, unnest(CAST(:privileges AS text[])) AS p(privilege)
    WHERE c.relnamespace = CAST(:schema AS oid) AND c.relkind = 'S'
      AND has_sequence_privilege(CAST(:role AS oid), c.oid, p.privilege)
    """
)
_CREATE_ANYWHERE = text(
    """
    SELECT has_schema_privilege(CAST(:role AS oid), CAST(:schema AS oid), 'CREATE') AS in_schema,
           has_database_privilege(CAST(:role AS oid), current_database(), 'CREATE') AS in_database
    """
)


async def grant_service_role(connection: AsyncConnection, role_name: str) -> PrivilegeChanges:
    """Make the privileges of `role_name` on the current schema exactly the service's, in
    the connection's transaction (the caller commits; a RoleRefused leaves it to roll back)."""
    quote = connection.dialect.identifier_preparer.quote_identifier
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    role = (await connection.execute(_ROLE, {"name": role_name})).one_or_none()
    if role is None:
        raise RoleRefused(f"there is no role named {role_name!r}; create it first (CREATE ROLE ... LOGIN)")
    schema = (await connection.execute(_SCHEMA)).one_or_none()
    if schema is None:
        raise RoleRefused("the connection has no current schema (search_path); nothing to grant")
    if role.rolsuper:
        raise RoleRefused(
            f"role {role_name!r} is a superuser, so it could drop the audit log's triggers; use an ordinary role"
        )
    if role.rolcreaterole:
        raise RoleRefused(
            f"role {role_name!r} has CREATEROLE, so it could make itself a member of the owner; use an ordinary role"
        )
    ids = {"role": role.oid, "schema": schema.oid}
    owned = (await connection.execute(_OWNED, ids)).one_or_none()
    if owned is not None:
        raise RoleRefused(
            f"role {role_name!r} owns, or is a member of the owner of, {owned.kind} {owned.name!r}, "
            "so it could alter or drop what the service must not; use a role that owns nothing"
        )

    qualified = quote(schema.nspname) + "."
    changes = PrivilegeChanges(role=role_name)
    objects: list[_Object] = []
    acl = (await connection.execute(_SCHEMA_ACL, ids)).one()
    objects.append(_Object.of("SCHEMA", quote(schema.nspname), SCHEMA_PRIVILEGES, acl))

    insertable: set[str] = set()
    usable_sequences: set[str] = set()
    for row in await connection.execute(_TABLES, {**ids, "kinds": list(_TABLE_KINDS)}):
        expected = table_privileges(row.relname)
        if "INSERT" in expected:
            insertable.add(row.relname)
        objects.append(_Object.of("TABLE", qualified + quote(row.relname), expected, row))
        changes.tables += 1
    for row in await connection.execute(_SEQUENCES, ids):
        expected = SEQUENCE_PRIVILEGES if row.owning_table in insertable else frozenset()
        objects.append(_Object.of("SEQUENCE", qualified + quote(row.relname), expected, row))
        if expected:
            usable_sequences.add(row.relname)
            changes.sequences += 1
    for row in await connection.execute(_FUNCTIONS, ids):
        # The worker calls the job queue's functions; trigger functions run without it.
        called = row.proname.startswith(JOB_QUEUE_PREFIX) and not row.is_trigger
        expected = FUNCTION_PRIVILEGES if called else frozenset()
        # regprocedure's text quotes the name and argument types as SQL needs them.
        objects.append(_Object.of("ROUTINE", row.signature, expected, row))
        changes.functions += called

    grantee = quote(role_name)
    for item in objects:
        changes.statements += item.statements(grantee)
    # The service needs no grant on a column of its own: table-wide ones cover it, and one
    # left over could let it change a column of a table it may only read.
    for row in await connection.execute(_COLUMN_GRANTS, ids):
        table = qualified + quote(row.relname)
        changes.statements.append(f"REVOKE {row.privilege} ({quote(row.attname)}) ON TABLE {table} FROM {grantee} CASCADE")
    for statement in changes.statements:
        await connection.execute(text(statement))

    await _refuse_what_remains(connection, role_name, ids, usable_sequences)
    return changes


async def _refuse_what_remains(
    connection: AsyncConnection, role_name: str, ids: dict, usable_sequences: set[str]
) -> None:
    """The role's effective privileges, through PUBLIC and its memberships too, must be
    no more than the service's: what is granted to another grantee is not ours to revoke."""
    through = "through PUBLIC or a role it is a member of; revoke it there"
    rows = await connection.execute(
        _EFFECTIVE_TABLES,
        {
            **ids,
            "kinds": list(_TABLE_KINDS),
            "privileges": list(_ALL_TABLE_PRIVILEGES),
            "column_privileges": list(_COLUMN_PRIVILEGES),
        },
    )
    for relname, privilege in sorted(rows.all()):
        if privilege not in table_privileges(relname):
            raise RoleRefused(f"role {role_name!r} still has {privilege} on table {relname!r} {through}")
    rows = await connection.execute(_EFFECTIVE_SEQUENCES, {**ids, "privileges": list(_ALL_SEQUENCE_PRIVILEGES)})
    for relname, privilege in sorted(rows.all()):
        if privilege not in (SEQUENCE_PRIVILEGES if relname in usable_sequences else ()):
            raise RoleRefused(f"role {role_name!r} still has {privilege} on sequence {relname!r} {through}")
    create = (await connection.execute(_CREATE_ANYWHERE, ids)).one()
    if create.in_schema:
        raise RoleRefused(
            f"role {role_name!r} can still CREATE in the schema {through} (e.g. REVOKE CREATE ON SCHEMA ... FROM PUBLIC)"
        )
    # A schema of its own named like the role would come first in the default search_path
    # ("$user", public) and shadow the service's tables in every one of its sessions.
    if create.in_database:
        raise RoleRefused(f"role {role_name!r} can still CREATE schemas in the database {through}")
