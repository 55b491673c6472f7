"""Intake's side of identity: sealing a reporter's contact apart from the report.

Run inside intake's transaction. The identity key is sealed to the reporter (who sees
their own contact in the mailbox), to the recovery key and to every active identity
custodian; never because someone reads cases: the triage officers the report is routed
to get the report, not the name. (A custodian who also reads cases holds both: the admin
is warned, and the docs advise custodians who handle no cases.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import crypto
from app.domain.errors import ServiceBusy
from app.identity.models import CaseIdentity, IdentityKey
from app.identity.repository import IdentityRepository


class IdentityNotConfigured(ServiceBusy):
    slug = "identity-not-configured"
    title = "Nobody could keep an identity in trust"


async def seal_identity(
    session: AsyncSession,
    case_id: uuid.UUID,
    identity: dict,
    reporter: crypto.PublicKey,
    recovery: crypto.PublicKey | None,
) -> Sequence[object]:
    """The rows to store with the case: the sealed identity and its key for each holder."""
    custodians = await IdentityRepository(session).custodians_with_keys()
    if recovery is None and not custodians:
        raise IdentityNotConfigured(
            "No recovery key is configured and no identity custodian has registered a key, so an "
            "identity given with this report could never be released to an investigator. Nothing "
            "was stored; send the report without contact details, or try again later.",
            retry_after_seconds=3600,
        )
    identity_key = crypto.new_identity_key()
    holders: list[tuple[str, uuid.UUID | None, crypto.PublicKey]] = [("reporter", None, reporter)]
    if recovery is not None:
        holders.append(("recovery", None, recovery))
    holders += [("custodian", user.id, crypto.PublicKey(user.public_key)) for user in custodians]
    rows: list[object] = [CaseIdentity(case_id=case_id, sealed_identity=crypto.seal_identity(identity_key, identity, case_id))]
    seen: set[str] = set()
    for kind, staff_user_id, public in holders:
        if public.fingerprint in seen:
            continue  # one sealed copy per key
        seen.add(public.fingerprint)
        rows.append(
            IdentityKey(
                case_id=case_id,
                holder_kind=kind,
                staff_user_id=staff_user_id,
                recipient_fingerprint=public.fingerprint,
                sealed_key=crypto.seal_identity_key(identity_key, public, case_id),
            )
        )
    return rows
