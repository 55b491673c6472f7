"""`/drill`: a participant enters their drill code, reads the scenario, then reports it
through the form (sent with the code, so it is a drill case) or records that it needs no
report. Anonymous like the report form: the code is carried in the page's forms, never in
an address, and nothing here is logged."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from fastapi.responses import HTMLResponse

from app.domain.drills import DrillTokenRejected
from app.domain.intake import Channel, Language
from app.drills.participation import ParticipationService
from app.intake.service import IntakeService
from app.settings import Settings
from app.web.forms import N_, ReportForm
from app.web.i18n import translate
from app.web.pages import render
from app.web.report_pages import ReportPages, message_page

PATH = "/drill"
CODE_MAX = 64


class DrillPages:
    def __init__(self, settings: Settings, language: Language):
        self.settings = settings
        self.language = language

    def action(self) -> str:
        return PATH + ("" if self.language is Language.KO else f"?lang={self.language.value}")

    def code_page(self, *, typed: str = "", error: str | None = None, status_code: int = 200) -> HTMLResponse:
        return render(
            "drill.html",
            self.language,
            PATH,
            status_code=status_code,
            action=self.action(),
            typed=typed,
            error=translate(self.language, error) if error else None,
        )

    async def post(
        self, posted: Mapping[str, str], participation: ParticipationService, intake: IntakeService, now: datetime
    ) -> HTMLResponse:
        code = posted.get("drill_code", posted.get("code", "")).strip()[:CODE_MAX]
        step = posted.get("step", "open")
        if not code:
            return self.code_page(error=N_("Enter the drill code you were given"), status_code=422)
        if step == "open":
            try:
                opened = await participation.open(code, now)
            except DrillTokenRejected:
                return self.code_page(typed=code, error=REFUSED, status_code=403)
            scenario = opened.scenario
            return render(
                "drill_scenario.html",
                self.language,
                PATH,
                action=self.action(),
                code=code,
                campaign=opened.campaign_name,
                title=scenario["title"][self.language.value],
                brief=scenario["brief"][self.language.value],
                channel=scenario["report"]["channel"],
                report_url="/report" + ("" if self.language is Language.KO else f"?lang={self.language.value}"),
            )
        if step == "no-report":
            try:
                await participation.decline(code, now)
            except DrillTokenRejected:
                return self.code_page(typed=code, error=REFUSED, status_code=403)
            return message_page(
                self.language,
                PATH,
                N_("Your decision was recorded"),
                [N_("You judged that this scenario needs no report. Thank you for taking part in the drill.")],
                status_code=200,
            )
        try:
            channel = Channel(posted.get("drill_channel", Channel.EMPLOYEE.value))
        except ValueError:
            channel = Channel.EMPLOYEE
        pages = ReportPages(self.settings, channel, PATH, drill_code=code)
        if step == "form":
            return pages.form_page(self.language, ReportForm.blank(channel, pages.new_ticket(now)))
        return await pages.post(self.language, posted, intake, now)


REFUSED = N_("This code cannot be used now: it is unknown, already used, or its drill is paused or over. Check it, or ask the drill's coordinator.")
