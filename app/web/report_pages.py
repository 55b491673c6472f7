"""The report form (`/report`, and `/internal/report` for employees): form, check your
answers, receipt. The report travels in the form until it is sent; intake's own path
stores it, with the page's form ticket in place of proof of work."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.domain import form_ticket, pow
from app.domain.attachments import FILE_TYPES
from app.domain.drills import DrillTokenRejected
from app.domain.errors import DomainError, RetryLater
from app.domain.intake import Channel, Language
from app.intake.service import FormsPaused, IdempotencyKeyReused, IntakeService, Submitted
from app.platform.multipart import MalformedMultipart, PartData, PartEnd, PartEvent, PartStart, multipart_events
from app.reporter.service import ReporterService
from app.settings import Settings
from app.web.forms import CONTACT_FIELDS, N_, ReportForm, option_label
from app.web.i18n import translate
from app.web.pages import render

logger = logging.getLogger("cleanwindow.web")


def same_origin(request: Request) -> bool:
    """A POST from one of our pages, not from another site (CSRF): browsers say where a
    request comes from in Sec-Fetch-Site and Origin. The pages also need a secret from the
    form itself (the ticket, or the reporter's session), which another site cannot read."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin == "null":  # an opaque origin (a sandboxed frame): only if the browser vouches
        return site == "same-origin"
    if origin:
        return urlsplit(origin).netloc == request.headers.get("host", "")
    return True


def refused_cross_site(language: Language, path: str) -> HTMLResponse:
    return message_page(
        language,
        path,
        N_("This form was sent from another site"),
        [N_("For your safety, reports are taken only from this service's own pages. Open the form again here.")],
        status_code=403,
    )


def message_page(
    language: Language, path: str, heading: str, paragraphs: list[str], *, status_code: int, **params: object
) -> HTMLResponse:
    return render(
        "message.html",
        language,
        path,
        status_code=status_code,
        is_error=status_code >= 400,
        heading=translate(language, heading),
        paragraphs=[translate(language, paragraph, **params) for paragraph in paragraphs],
        back_url=path + ("" if language is Language.KO else f"?lang={language.value}"),
        back_label=translate(language, N_("Back to the form")),
    )


class ReportPages:
    def __init__(self, settings: Settings, channel: Channel, path: str, drill_code: str | None = None):
        self.settings = settings
        self.channel = channel
        self.path = path
        # A drill participant's code: carried through the form, sent as the drill token.
        self.drill_code = drill_code

    @property
    def heading(self) -> str:
        return N_("Report as an employee") if self.channel is Channel.EMPLOYEE else N_("Report as a citizen")

    def new_ticket(self, now: datetime) -> str:
        return form_ticket.issue(self.settings.secret_key_bytes, now)

    def form_page(self, language: Language, form: ReportForm, status_code: int = 200) -> HTMLResponse:
        intake = self.settings.intake
        return render(
            "report.html",
            language,
            self.path,
            status_code=status_code,
            form=form,
            heading=translate(language, self.heading),
            action=self.action(language),
            categories=[{"code": o.code, "label": option_label(o, language)} for o in intake.categories],
            org_units=[{"code": o.code, "label": option_label(o, language)} for o in intake.org_units],
            show_department=self.channel is Channel.EMPLOYEE,
            drill=self.drill_fields(),
        )

    def drill_fields(self) -> dict[str, str] | None:
        if self.drill_code is None:
            return None
        return {"drill_code": self.drill_code, "drill_channel": self.channel.value}

    def action(self, language: Language) -> str:
        return self.path + ("" if language is Language.KO else f"?lang={language.value}")

    def check_page(
        self, language: Language, form: ReportForm, problem: str | None = None, status_code: int = 200, **params: object
    ) -> HTMLResponse:
        return render(
            "check.html",
            language,
            self.path,
            status_code=status_code,
            form=form,
            action=self.action(language),
            answers=self.answers(language, form),
            problem=translate(language, problem, **params) if problem else None,
            drill=self.drill_fields(),
            accept=",".join(sorted(FILE_TYPES)),
        )

    def answers(self, language: Language, form: ReportForm) -> list[tuple[str, str]]:
        intake = self.settings.intake
        t = lambda message: translate(language, message)  # noqa: E731
        rows = [
            (t(N_("Kind of corruption")), option_label(intake.category(form.get("category")), language)),
            (t(N_("Organisation unit (optional)")), option_label(intake.org_unit(form.get("org_unit")), language)),
            (t(N_("Summary")), form.get("summary")),
            (t(N_("What happened")), form.get("details")),
            (t(N_("When (optional)")), form.get("when")),
            (t(N_("Where (optional)")), form.get("where")),
            (t(N_("Who was involved (optional)")), form.get("persons_involved")),
            (t(N_("How you know (optional)")), form.get("how_known")),
            (t(N_("Evidence (optional)")), form.get("evidence")),
        ]
        if not form.identified:
            rows.append((t(N_("Your contact details (optional)")), t(N_("None: you stay anonymous"))))
        else:
            labels = {
                "name": N_("Name"),
                "department": N_("Department or post"),
                "email": N_("E-mail address"),
                "phone": N_("Phone number"),
                "notes": N_("How and when we may contact you safely"),
            }
            rows += [(t(labels[name]), form.get(name)) for name in CONTACT_FIELDS if form.get(name)]
        return rows

    async def post(
        self, language: Language, posted: Mapping[str, str], service: IntakeService, now: datetime
    ) -> HTMLResponse:
        form = ReportForm.from_post(self.channel, posted)
        step = posted.get("step", "check")
        if step == "edit":
            return self.form_page(language, form)
        form.check(self.settings.intake)
        if form.errors:
            return self.form_page(language, form, status_code=422)
        if form.filled_honeypot:
            return message_page(
                language,
                self.path,
                N_("The report could not be sent"),
                [N_("The form came back with a field filled in that people never see. If you are a person, open the form again and send it without an automatic form filler.")],
                status_code=400,
            )
        if step != "send":
            return self.check_page(language, form)
        return await self.send(language, form, service.submit, now)

    async def send(
        self,
        language: Language,
        form: ReportForm,
        submit: Callable[..., Awaitable[Submitted]],
        now: datetime,
        attach: Callable[[Submitted], Awaitable[str | None]] | None = None,
    ) -> HTMLResponse:
        """Send the checked report; with `attach`, then its file (whose refusal does not
        undo the report: the receipt page says so, and where to attach it again)."""
        try:
            submitted = await submit(
                form.submission(language),
                idempotency_key=form.idempotency_key,
                drill_token=self.drill_code,
                now=now,
                form=form.ticket,
            )
        except form_ticket.FormTicketTooFresh:
            return self.check_page(
                language, form, N_("The report was sent very quickly after the form was opened. Check your answers and press Send again."), 422
            )
        except (form_ticket.FormTicketExpired, form_ticket.FormTicketInvalid):
            form.ticket = self.new_ticket(now)
            return self.check_page(
                language, form, N_("The form had been open for a long time. Your answers are kept: check them and press Send again."), 422
            )
        except FormsPaused as paused:
            # The answers stay on the page (and the form stays valid for hours): send it later.
            retry_after = int(paused.extensions["retry_after"])
            page = self.check_page(language, form, status_code=429, problem=N_(
                "Too many reports arrived from the pages in the last hour, so this one was not stored yet. "
                "Your answers are kept on this page: press Send again in %(minutes)s minutes."
            ), minutes=max(1, -(-retry_after // 60)))
            page.headers["Retry-After"] = str(retry_after)
            return page
        except IdempotencyKeyReused:
            return message_page(
                language,
                self.path,
                N_("This form was already used to send a report"),
                [N_("A report was sent from this form before it was changed. To add to it, write a message on the status page with your receipt; for a different report, open a new form.")],
                status_code=409,
            )
        except pow.ChallengeReused:
            return message_page(
                language,
                self.path,
                N_("This report was already sent"),
                [N_("This form was already used to send a report. If you did not see a receipt, send the report again from a new form.")],
                status_code=409,
            )
        except DrillTokenRejected:
            return message_page(
                language,
                self.path,
                N_("This drill code cannot be used now"),
                [N_("The code is unknown, already used, or its drill is paused or over. Ask the drill's coordinator.")],
                status_code=403,
            )
        except RetryLater:
            return self.check_page(language, form, status_code=503, problem=N_(
                "The service cannot take reports right now, and nothing was stored. Your answers are kept on this page: press Send again later."
            ))
        file_problem = None
        if attach is not None:
            file_problem = (
                N_("This report had already been sent, so the file was not attached again. Check on the status page that it is there.")
                if submitted.replayed
                else await attach(submitted)
            )
        return render(
            "receipt.html",
            language,
            self.path,
            receipt_groups=submitted.receipt.split("-"),
            received_on=submitted.received_on.isoformat(),
            file_attached=attach is not None and file_problem is None and not submitted.replayed,
            file_problem=translate(language, file_problem) if file_problem else None,
        )

    async def post_with_file(
        self, language: Language, request: Request, intake: IntakeService, reporter: ReporterService, now: datetime
    ) -> HTMLResponse:
        """The "send" form of the check page, which may carry one file after the report's
        fields. The fields are read first (small, bounded); the report is checked and stored
        (committed, so that the file can be staged against it); the file then streams into
        the new report's mailbox, sealed as it arrives, as an upload on the status page does."""
        events = multipart_events(request)
        try:
            posted, file_start = await text_parts(events)
        except MalformedMultipart:
            return message_page(language, self.path, N_("The report could not be sent"), [N_("The form came back damaged. Open it again.")], status_code=400)
        if file_start is None or not file_start.filename:
            return await self.post(language, posted, intake, now)
        form = ReportForm.from_post(self.channel, posted)
        form.check(self.settings.intake)
        if form.errors or form.filled_honeypot or posted.get("step") != "send":
            return await self.post(language, posted, intake, now)
        declared = request.headers.get("content-length", "")

        async def attach(submitted: Submitted) -> str | None:
            try:
                opened = await reporter.open_session(submitted.receipt, now)
                context = await reporter.authenticate_briefly(opened.token, now)
                await reporter.add_attachment(
                    context, resumed(file_start, events), now, at_most_bytes=int(declared) if declared.isdigit() else None
                )
            except DomainError as refused:
                return FILE_PROBLEMS.get(refused.slug, N_("The file could not be attached."))
            except Exception as failure:  # noqa: BLE001 - the report is stored: its receipt must be shown
                logger.warning("a file sent with a report was not attached (%s)", type(failure).__name__)
                return N_("The file could not be attached.")
            return None

        return await self.send(language, form, intake.submit_committed, now, attach)


FILE_PROBLEMS = {
    "unsupported-file-type": N_("This kind of file cannot be attached. Attach a PDF, a picture, a text, HWP or Office document, or an MP3."),
    "attachment-too-large": N_("The file is too large."),
    "upload-too-slow": N_("The upload took too long and was stopped; nothing of it was kept. Try a smaller file, or try again."),
}
# The report's fields in a multipart form: at most this much text in all, in so many fields.
TEXT_PARTS_MAX = 256 * 1024
TEXT_PARTS_COUNT_MAX = 40


async def text_parts(events: AsyncIterator[PartEvent]) -> tuple[dict[str, str], PartStart | None]:
    """The form's text fields up to its first `file` part, and that part's start (or None
    when there is none); the iterator then stands inside the file part."""
    posted: dict[str, str] = {}
    name: str | None = None
    value = bytearray()
    total = parts = 0
    async for event in events:
        if isinstance(event, PartStart):
            if event.name == "file":
                return posted, event
            parts += 1
            if parts > TEXT_PARTS_COUNT_MAX:
                raise MalformedMultipart("The form has too many fields.")
            name, value = event.name, bytearray()
        elif isinstance(event, PartData) and name is not None:
            value.extend(event.data)
            total += len(event.data)
            if total > TEXT_PARTS_MAX:
                raise MalformedMultipart("The form's text is too long.")
        elif isinstance(event, PartEnd) and name is not None:
            posted[name] = value.decode("utf-8", "replace")
            name = None
    return posted, None


async def resumed(start: PartStart, events: AsyncIterator[PartEvent]) -> AsyncIterator[PartEvent]:
    yield start
    async for event in events:
        yield event
