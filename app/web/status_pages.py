"""`/status`: the receipt opens the report's public status, the thread, a reply box,
attachments, and any request to learn the reporter's identity.

No cookie: the reporter's session (the same stateless token the API issues) travels in a
hidden field of each form on the page, so every step is a POST from that page, and the
token never appears in an address, a history or a log. It lives as long as the API's
(`reporter_session_minutes`); after that the receipt is asked again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.domain.attachments import FILE_TYPES, UploadTooSlow
from app.domain.errors import DomainError, NotAuthenticated, NotFound, RetryLater
from app.domain.identity import IdentityConflict, ReporterAnswer
from app.domain.intake import Language
from app.domain.receipts import RECEIPT_DIGITS, damm_check_digit
from app.platform.multipart import MalformedMultipart, PartData, PartEnd, PartEvent, PartStart, multipart_events
from app.reporter.service import InvalidReceipt, ReporterContext, ReporterService
from app.settings import Settings
from app.web.forms import N_
from app.web.i18n import translate
from app.web.pages import render

PATH = "/status"
SESSION_FIELD = "session"
SESSION_MAX = 512
MESSAGE_MAX = 20_000

STATUS_TEXT = {
    "received": (N_("Received"), N_("Your report has arrived and is waiting to be looked at.")),
    "in_review": (N_("Being assessed"), N_("Investigators have acknowledged your report and are assessing it.")),
    "in_progress": (N_("Being investigated"), N_("Your report is being investigated.")),
    "referred": (N_("Referred"), N_("Your report was passed to another authority that can act on it.")),
    "closed": (N_("Closed"), N_(
            "Handling of your report has ended. After a retention period set by the organisation, its content, messages and files are deleted and this receipt opens nothing: keep what you need. Until then you can still read and send messages."
        )),
}


CONTENT_LABELS = {
    "summary": N_("Summary"),
    "details": N_("What happened"),
    "when": N_("When (optional)"),
    "where": N_("Where (optional)"),
    "persons_involved": N_("Who was involved (optional)"),
    "how_known": N_("How you know (optional)"),
    "evidence": N_("Evidence (optional)"),
}
ROLE_LABELS = {"investigator": N_("investigator"), "triage": N_("triage officer"), "supervisor": N_("supervisor")}
CONTACT_LABELS = {
    "name": N_("Name"),
    "department": N_("Department or post"),
    "email": N_("E-mail address"),
    "phone": N_("Phone number"),
    "notes": N_("How and when we may contact you safely"),
}


def receipt_problem(typed: str) -> str | None:
    """What is wrong with a typed receipt, before any work is spent on it: its own message
    for a mistyped digit (the check digit), another for a wrong length."""
    digits = "".join(character for character in typed if character not in " -.·\t")
    if not digits:
        return N_("Enter your receipt")
    if not (digits.isascii() and digits.isdigit()):
        return N_("A receipt has only digits; spaces and dashes are fine")
    if len(digits) != RECEIPT_DIGITS:
        return N_("A receipt has 21 digits; check that none is missing or extra")
    if damm_check_digit(digits) != 0:
        return N_("One of the digits is mistyped, or two are swapped: check the receipt digit by digit")
    return None


class StatusPages:
    def __init__(self, settings: Settings, service: ReporterService, language: Language):
        self.settings = settings
        self.service = service
        self.language = language

    def t(self, message: str, **params: object) -> str:
        return translate(self.language, message, **params)

    def action(self, path: str = PATH) -> str:
        return path + ("" if self.language is Language.KO else f"?lang={self.language.value}")

    def receipt_page(self, *, typed: str = "", error: str | None = None, notice: str | None = None, status_code: int = 200) -> HTMLResponse:
        return render(
            "status.html",
            self.language,
            PATH,
            status_code=status_code,
            action=self.action(),
            typed=typed,
            error=self.t(error) if error else None,
            notice=self.t(notice) if notice else None,
        )

    async def mailbox_page(
        self, context: ReporterContext, token: str, *, done: str | None = None, problem: str | None = None, status_code: int = 200
    ) -> HTMLResponse:
        report = await self.service.report(context)
        label, explanation = STATUS_TEXT[report["status"]]
        return render(
            "mailbox.html",
            self.language,
            PATH,
            status_code=status_code,
            action=self.action(),
            upload_action=self.action(PATH + "/attachments"),
            session=token,
            report=report,
            status_label=self.t(label),
            status_explanation=self.t(explanation),
            done=self.t(done) if done else None,
            problem=self.t(problem) if problem else None,
            accept=",".join(sorted(FILE_TYPES)),
            role_labels={role: self.t(label) for role, label in ROLE_LABELS.items()},
            content_rows=[(self.t(CONTENT_LABELS[name]), value) for name, value in report["content"].items() if name in CONTENT_LABELS],
            contact_rows=[(self.t(CONTACT_LABELS[name]), value) for name, value in (report["contact"] or {}).items() if name in CONTACT_LABELS],
        )

    async def open(self, typed: str, now: datetime) -> HTMLResponse:
        problem = receipt_problem(typed)
        if problem:
            return self.receipt_page(typed=typed, error=problem, status_code=422)
        try:
            opened = await self.service.open_session(typed, now)
            context = await self.service.authenticate(opened.token, now)
        except InvalidReceipt:
            return self.receipt_page(typed=typed, error=N_("No report has this receipt. Check it digit by digit."), status_code=401)
        except RetryLater:
            return self.receipt_page(
                typed=typed, error=N_("The service is busy or has paused receipt checks for a while. Try again in a few minutes."), status_code=429
            )
        return await self.mailbox_page(context, opened.token)

    async def act(self, posted: Mapping[str, str], now: datetime) -> HTMLResponse:
        """A reply, or an answer to an identity request, from the mailbox page."""
        token = posted.get(SESSION_FIELD, "")[:SESSION_MAX]
        step = posted.get("step", "")
        try:
            context = await self.service.authenticate(token, now, lock=step == "reply")
        except NotAuthenticated:
            return self.receipt_page(notice=N_("For your safety the page closed after a while. Enter your receipt again."), status_code=401)
        if step == "reply":
            body = posted.get("body", "").replace("\r\n", "\n").strip()
            if not body:
                return await self.mailbox_page(context, token, problem=N_("Write a message before sending it"), status_code=422)
            if len(body) > MESSAGE_MAX:
                return await self.mailbox_page(context, token, problem=N_("A message has at most 20,000 characters"), status_code=422)
            await self.service.add_message(context, body, now)
            return await self.mailbox_page(context, token, done=N_("Your message was sent."))
        if step == "identity":
            answer = posted.get("answer", "")
            try:
                request_id = uuid.UUID(posted.get("request", ""))
                await self.service.answer_identity_request(context, request_id, ReporterAnswer(answer), now)
            except (ValueError, NotFound, IdentityConflict):
                return await self.mailbox_page(context, token, problem=N_("This answer could not be recorded; the request may have changed. Read it again below."), status_code=409)
            return await self.mailbox_page(
                context, token, done=N_("Your answer was recorded. You can change it until your identity is released.")
            )
        return await self.mailbox_page(context, token)

    async def upload(self, request: Request, now: datetime) -> HTMLResponse:
        """The form sends the session first, then the file: the session is read (a few
        hundred bytes at most), checked, and the file streams on into the mailbox's upload,
        sealed as it arrives, never held whole."""
        events = multipart_events(request)
        try:
            token = await leading_field(events, SESSION_FIELD)
        except MalformedMultipart:
            return self.receipt_page(notice=N_("For your safety the page closed after a while. Enter your receipt again."), status_code=401)
        try:
            context = await self.service.authenticate_briefly(token, now)
        except NotAuthenticated:
            return self.receipt_page(notice=N_("For your safety the page closed after a while. Enter your receipt again."), status_code=401)
        declared = request.headers.get("content-length", "")
        try:
            await self.service.add_attachment(context, events, now, at_most_bytes=int(declared) if declared.isdigit() else None)
        except UploadTooSlow:
            problem, status = N_("The upload took too long and was stopped; nothing of it was kept. Try a smaller file, or try again."), 408
        except MalformedMultipart:
            problem, status = N_("Choose a file to attach"), 422
        except DomainError as refused:
            problem, status = UPLOAD_PROBLEMS.get(refused.slug, N_("This file could not be attached.")), refused.status
        else:
            return await self.mailbox_page(await self.service.authenticate(token, now), token, done=N_("Your file was attached."))
        return await self.mailbox_page(await self.service.authenticate(token, now), token, problem=problem, status_code=status)


UPLOAD_PROBLEMS = {
    "unsupported-file-type": N_("This kind of file cannot be attached. Attach a PDF, a picture, a text, HWP or Office document, or an MP3."),
    "attachment-too-large": N_("The file is too large."),
    "attachment-limit-reached": N_("Your report has as many attachments as it can hold."),
}


async def leading_field(events: AsyncIterator[PartEvent], name: str) -> str:
    """The text of the first part, which must be `name` and short; the iterator then stands
    at the next part."""
    start = await anext(events, None)
    if not isinstance(start, PartStart) or start.name != name:
        raise MalformedMultipart(f"The form's first part is not `{name}`.")
    value = bytearray()
    async for event in events:
        if isinstance(event, PartData):
            value.extend(event.data)
            if len(value) > SESSION_MAX:
                raise MalformedMultipart(f"`{name}` is too long.")
        elif isinstance(event, PartEnd):
            return value.decode("utf-8", "replace")
        else:
            break
    raise MalformedMultipart(f"`{name}` is incomplete.")
