"""Schema compatibility: which code revisions may run on each schema revision.

During a rolling deploy the migration Job moves the schema ahead of the old pods' code.
`migrations/env.py` writes, after every upgrade or downgrade, the code revisions that can
still run on the schema it reached (the head, and each earlier revision reached through
migrations declaring `backward_compatible = True`); `/readyz`, the worker and the CLI read
it to stay up on a schema newer than their own code (docs/operations.md, "Upgrading").

Revision ID: 7e2a91c4d5b0
Revises: 4ca52d7fd92a
Create Date: 2026-11-28 18:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7e2a91c4d5b0"
down_revision: str | None = "4ca52d7fd92a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A new table that no earlier code reads: the code of 4ca52d7fd92a runs on this schema.
backward_compatible: bool = True


def upgrade() -> None:
    op.create_table(
        "schema_compatibility",
        sa.Column("schema_revision", sa.String(32), nullable=False),
        sa.Column("code_revisions", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("schema_revision", name=op.f("pk_schema_compatibility")),
    )


def downgrade() -> None:
    op.drop_table("schema_compatibility")
