"""Anonymous intake: proof of work, sealing, receipts, idempotent retries.

Nothing here reads who the caller is. The only costs an anonymous caller can impose are
bounded by the proof of work (whose difficulty rises with a submission budget shared by
all replicas through PostgreSQL) and by the receipt-hashing CPU budget.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case, CaseKey
from app.context import AppContext, Service
from app.domain import crypto, pow
from app.domain import form_ticket
from app.domain.budgets import FORM_SUBMISSIONS, SUBMISSIONS, window_start
from app.domain.clock import organisation_date
from app.domain.drills import presented_digest
from app.domain.errors import InvalidInput, ServiceBusy, TooManyAttempts
from app.domain.receipts import derive_receipt_secrets, new_receipt, parse_receipt
from app.domain.reporter_access import check_idempotency_key
from app.domain.triage import CaseState, acknowledgement_due, feedback_due
from app.drills.admission import DrillAdmission, DrillEntry
from app.identity.sealing import seal_identity
from app.domain.notifications import EventKind
from app.notifications.outbox import Outbox
from app.intake.repository import IntakeRepository
from app.intake.schemas import ReportSubmission


class IdempotencyKeyReused(InvalidInput):
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused for a different report"


class IntakeNotConfigured(ServiceBusy):
    slug = "intake-not-configured"
    title = "Intake has no one to seal reports to"


class FormsPaused(TooManyAttempts):
    slug = "form-submissions-paused"
    title = "Reports from the pages without proof of work are paused"


class ProofOfWorkRequired(InvalidInput):
    slug = "proof-of-work-required"
    title = "Proof of work required"


@dataclass(frozen=True)
class Submitted:
    receipt: str
    received_on: date
    replayed: bool


@dataclass(frozen=True)
class Injected:
    receipt: str
    received_on: date
    scenario: int


def _request_fingerprint(submission: ReportSubmission, drill_mark: str | None) -> str:
    request = submission.model_dump(mode="json", exclude={"pow"})
    if drill_mark is not None:  # a retry must present the same drill token or code
        request["drill"] = drill_mark
    canonical = json.dumps(request, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IntakeService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = IntakeRepository(session)
        self.intake = self.settings.intake
        self.idempotency = context.idempotency

    # --- proof of work -------------------------------------------------------------

    async def current_difficulty(self, now: datetime) -> int:
        base = self.settings.pow_difficulty
        if base == 0:
            return 0
        used = await self.repository.budget_used(
            SUBMISSIONS, window_start(now, self.intake.budget_window_seconds)
        )
        extra = pow.extra_difficulty(used, self.intake.submissions_per_window, self.intake.max_extra_difficulty_bits)
        return min(pow.MAX_DIFFICULTY, base + extra)

    async def issue_challenge(self, now: datetime) -> pow.IssuedChallenge:
        return pow.issue_challenge(
            self.settings.secret_key_bytes,
            difficulty=await self.current_difficulty(now),
            expires_at=now + timedelta(seconds=self.intake.challenge_ttl_seconds),
        )

    # --- submission ------------------------------------------------------------------

    def _check_catalogue(self, submission: ReportSubmission) -> None:
        # The detail names the field and the allowed codes, never the code sent: an error
        # does not echo what a reporter typed.
        if self.intake.category(submission.category) is None:
            codes = [option.code for option in self.intake.categories]
            raise InvalidInput(
                "Unknown category; `allowed` lists the codes.", field="category", allowed=codes
            )
        if submission.org_unit is not None and self.intake.org_unit(submission.org_unit) is None:
            codes = [option.code for option in self.intake.org_units]
            raise InvalidInput(
                "Unknown organisation unit; `allowed` lists the codes.", field="org_unit", allowed=codes
            )

    async def submit(
        self,
        submission: ReportSubmission,
        *,
        idempotency_key: str | None,
        drill_token: str | None,
        now: datetime,
        form: str | None = None,
    ) -> Submitted:
        """`POST /api/v1/reports`: a real report, or with `X-Drill-Token` (an injection
        token or a participant code) a drill case of that campaign. The pages send `form`,
        the ticket their form was served with, in place of proof of work."""
        submitted, _ = await self._submit(
            submission, idempotency_key=idempotency_key, drill_token=drill_token, drill=None, now=now, form=form
        )
        return submitted

    async def submit_committed(self, submission: ReportSubmission, *, idempotency_key: str | None, drill_token: str | None, now: datetime, form: str) -> Submitted:
        """`submit`, committed before it returns: a page's report with files attached is
        stored first, then its files stream in on the mailbox's upload path, which stages
        them against the stored case in transactions of their own."""
        async with self.context.own_transaction() as session:
            return await IntakeService(session, self.context).submit(
                submission, idempotency_key=idempotency_key, drill_token=drill_token, now=now, form=form
            )

    async def inject(
        self, campaign_id: uuid.UUID, coordinator_id: uuid.UUID, scenario: int | None, now: datetime
    ) -> Injected:
        """`POST /drills/{id}/inject`: the scenario's report through the very same path as
        any report; only the proof of work and the budgets are waived."""
        async with self.context.own_transaction() as session:
            drill = await DrillAdmission(session, self.settings.secret_key_bytes).for_injection(
                campaign_id, coordinator_id, scenario, now
            )
        submission = ReportSubmission.model_validate(drill.report)
        try:
            submitted, claimed = await self._submit(
                submission, idempotency_key=None, drill_token=None, drill=drill, now=now
            )
        except BaseException:
            async with self.context.own_transaction() as session:
                await DrillAdmission(session, self.settings.secret_key_bytes).give_back_turn(drill)
            raise
        assert claimed is not None
        return Injected(receipt=submitted.receipt, received_on=submitted.received_on, scenario=claimed)

    async def _submit(
        self,
        submission: ReportSubmission,
        *,
        idempotency_key: str | None,
        drill_token: str | None,
        drill: DrillEntry | None,
        now: datetime,
        form: str | None = None,
    ) -> tuple[Submitted, int | None]:
        self._check_catalogue(submission)
        secret = self.settings.secret_key_bytes
        drill_mark = drill.campaign_id.hex if drill is not None else None
        if drill_token is not None:
            drill_mark = presented_digest(secret, drill_token)
        fingerprint = _request_fingerprint(submission, drill_mark)
        idempotency_digest = None
        if idempotency_key is not None:
            idempotency_key = check_idempotency_key(idempotency_key)
            idempotency_digest = self.idempotency.digest(idempotency_key)

        # Cheap checks first, in a short session of their own, so that no connection is
        # held while the receipt is hashed. A drill token is checked here too (after a
        # replay, whose code is used by now): a refused one costs nothing, stores nothing.
        async with self.context.own_transaction() as session:
            checks = IntakeRepository(session)
            salt = await self.context.receipt_salt.get(checks)
            if idempotency_digest is not None:
                earlier = await checks.case_by_idempotency_digest(idempotency_digest)
                if earlier is not None:
                    return self._replay(earlier, idempotency_key, fingerprint), None
            if drill_token is not None:
                drill = await DrillAdmission(session, secret).check(drill_token, now)
            pow_digest = None
            if form is not None and (drill is None or not drill.waives_proof_of_work):
                pow_digest = await self._admit_form(form, checks, now)
            elif drill is None or not drill.waives_proof_of_work:
                pow_digest = self._verify_work(submission, now)
            if pow_digest is not None and await checks.pow_used(pow_digest):
                raise pow.ChallengeReused("This challenge was already used; ask for a new one.")

        receipt = new_receipt()
        secrets = await self.context.receipt_cpu.run(
            derive_receipt_secrets, parse_receipt(receipt), salt, self.context.key_derivation.receipts
        )
        received_on = organisation_date(now, self.settings.zone)
        acknowledge_due_on = acknowledgement_due(received_on, self.intake.acknowledge_days)
        case = Case(
            id=uuid.uuid4(),
            channel=submission.channel.value,
            category=submission.category,
            org_unit=submission.org_unit,
            language=submission.language.value,
            state=CaseState.RECEIVED.value,
            version=1,
            is_drill=drill is not None,
            drill_campaign_id=drill.campaign_id if drill is not None else None,
            shown_as_drill=drill is not None and not drill.blind,
            received_on=received_on,
            acknowledge_due_on=acknowledge_due_on,
            next_due_on=acknowledge_due_on,
            feedback_due_on=feedback_due(acknowledge_due_on, None, self.intake.feedback_months),
            receipt_scheme=self.context.key_derivation.receipts.number,
            receipt_tag=secrets.lookup_tag,
            pow_digest=pow_digest,
        )
        reporter_public = secrets.reporter_key().public_key
        case.reporter_public_key = reporter_public.raw
        content_key = crypto.new_content_key()
        # The contact is sealed apart under an identity key of its own (below): the report
        # keeps `"contact": null`, so whoever reads the report does not read the name.
        sealed = {"content": submission.content.model_dump(exclude_none=True), "contact": None}
        case.sealed_report = crypto.seal(
            content_key,
            json.dumps(sealed, ensure_ascii=False).encode(),
            purpose=crypto.PURPOSE_REPORT,
            case_id=case.id,
        )
        if idempotency_key is not None:
            case.idempotency_digest = idempotency_digest
            case.sealed_replay = self.idempotency.seal_receipt(
                idempotency_key, case.id, json.dumps({"receipt": receipt, "request": fingerprint})
            )
        keys: list[object] = list(await self._seal_to_readers(case, content_key, reporter_public))
        if submission.contact is not None:
            keys += await seal_identity(
                self.session,
                case.id,
                submission.contact.model_dump(exclude_none=True),
                reporter_public,
                self.settings.recovery_key,
            )

        scenario = None
        try:
            async with self.session.begin_nested():
                if drill is not None:
                    # Under the campaign's lock: a pause or close that committed since the
                    # check above wins, and a code is taken exactly once.
                    admission = DrillAdmission(self.session, secret)
                    scenario = await admission.claim(drill, now)
                await self.repository.add_case(case, keys)
                if drill is not None:
                    await admission.record_case(case.id, drill, scenario, now)
                # In the case's transaction: a report that is not stored tells no one, and
                # a stored one is never left untold. Batched, so the notice dates it only
                # to its batch.
                await Outbox(self.session, self.settings).emit(
                    EventKind.CASE_RECEIVED,
                    now,
                    audience=["triage"],
                    case_id=case.id,
                    drill_campaign_id=case.drill_campaign_id,
                )
        except IntegrityError:
            # A concurrent request won the race for this idempotency key or challenge.
            if idempotency_digest is not None:
                winner = await self.repository.case_by_idempotency_digest(idempotency_digest)
                if winner is not None:
                    return self._replay(winner, idempotency_key, fingerprint), None
            if pow_digest is not None and await self.repository.pow_used(pow_digest):
                raise pow.ChallengeReused("This challenge was already used; ask for a new one.") from None
            raise
        if drill is None:
            self.context.intake_hours.observe(now)
            # Drill reports do not count against the budget that raises real reporters'
            # proof of work: a drill must not make reporting harder for anyone.
            window = window_start(now, self.intake.budget_window_seconds)
            await self.repository.spend_budget(SUBMISSIONS, window)
            if form is not None:
                await self.repository.spend_budget(FORM_SUBMISSIONS, window)
        return Submitted(receipt=receipt, received_on=received_on, replayed=False), scenario

    async def _admit_form(self, ticket: str, checks: IntakeRepository, now: datetime) -> bytes:
        """A page's form ticket in place of proof of work: costless for a person with
        JavaScript off, so its own budget (shared by all replicas, no address involved)
        bounds how many such reports a window takes; past it they are refused until the
        window ends, and the reporter is told when to try again."""
        web = self.settings.web
        checked = form_ticket.verify(
            self.settings.secret_key_bytes,
            ticket,
            now,
            min_seconds=web.ticket_min_seconds,
            max_seconds=web.ticket_max_hours * 3600,
        )
        window = window_start(now, self.intake.budget_window_seconds)
        if await checks.budget_used(FORM_SUBMISSIONS, window) >= web.form_submissions_per_window:
            window_end = window + timedelta(seconds=self.intake.budget_window_seconds)
            raise FormsPaused(
                "Too many reports were sent from the pages in the last hour; this one was not stored.",
                retry_after_seconds=max(1, int((window_end - now).total_seconds())),
            )
        return checked.digest

    def _verify_work(self, submission: ReportSubmission, now: datetime) -> bytes | None:
        if self.settings.pow_difficulty == 0:
            return None  # POW_DIFFICULTY=0 disables the check, as the contract says
        if submission.pow is None:
            raise ProofOfWorkRequired(
                "Ask POST /api/v1/intake/challenges for a challenge and send its solution as `pow`."
            )
        return pow.verify_solution(
            self.settings.secret_key_bytes, submission.pow.challenge, submission.pow.nonce, now
        )

    def _replay(self, case: Case, idempotency_key: str | None, fingerprint: str) -> Submitted:
        opened = (
            self.idempotency.open_receipt(idempotency_key, case.id, case.sealed_replay)
            if idempotency_key is not None and case.sealed_replay is not None
            else None
        )
        if opened is None:
            raise IdempotencyKeyReused("This Idempotency-Key cannot be replayed.")
        replay = json.loads(opened)
        if replay["request"] != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different report; use a new key "
                "for a new report."
            )
        return Submitted(receipt=replay["receipt"], received_on=case.received_on, replayed=True)

    async def _seal_to_readers(
        self, case: Case, content_key: bytes, reporter_public: crypto.PublicKey
    ) -> list[CaseKey]:
        routed = self.intake.channel_recipients.get(case.channel)
        staff = await self.repository.triage_recipients(routed)
        recovery = self.settings.recovery_key
        if recovery is None and not staff:
            raise IntakeNotConfigured(
                "No recovery key is configured and no triage officer has registered a key, "
                "so nobody could ever read a report; nothing was stored.",
                retry_after_seconds=3600,
            )
        keys = [
            CaseKey(
                case_id=case.id,
                recipient_kind="reporter",
                recipient_fingerprint=reporter_public.fingerprint,
                sealed_key=crypto.seal_content_key(content_key, reporter_public, case.id),
            )
        ]
        if recovery is not None:
            keys.append(
                CaseKey(
                    case_id=case.id,
                    recipient_kind="recovery",
                    recipient_fingerprint=recovery.fingerprint,
                    sealed_key=crypto.seal_content_key(content_key, recovery, case.id),
                )
            )
        for user in staff:
            public = crypto.PublicKey(user.public_key)
            if any(key.recipient_fingerprint == public.fingerprint for key in keys):
                continue  # one sealed copy per key, even if two accounts share one
            keys.append(
                CaseKey(
                    case_id=case.id,
                    recipient_kind="staff",
                    staff_user_id=user.id,
                    recipient_fingerprint=public.fingerprint,
                    sealed_key=crypto.seal_content_key(content_key, public, case.id),
                )
            )
        return keys
