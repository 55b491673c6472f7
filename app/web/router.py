"""The pages: thin translations between HTTP and templates."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import Now, SettingsDep
from app.platform.middleware import BodyTooLarge
from app.settings import Settings
from app.domain.intake import Channel
from app.intake.deps import IntakeServiceDep
from app.platform.problems import problem_responses
from app.web.forms import FORM_MAX_BYTES, ReportForm
from app.web.i18n import HERE, language_of
from app.web.pages import render, static_file
from app.drills.deps import ParticipationServiceDep
from app.reporter.deps import ReporterServiceDep
from app.web.drill_pages import PATH as DRILL_PATH
from app.web.drill_pages import DrillPages
from app.web.report_pages import ReportPages, refused_cross_site, same_origin
from app.web.status_pages import PATH as STATUS_PATH
from app.web.status_pages import StatusPages

router = APIRouter(include_in_schema=False)

# Served from the package by name: nothing else under static/ is reachable, and no path
# from the request ever reaches the file system.
STATIC_FILES = {"site.css": "text/css; charset=utf-8", "print.js": "text/javascript; charset=utf-8"}

# Any value: `language_of` turns anything but `en` and `ko` into Korean.
Lang = Annotated[str | None, Query(alias="lang")]


@router.get("/", response_class=HTMLResponse)
async def home(settings: SettingsDep, lang: Lang = None) -> HTMLResponse:
    return render(
        "index.html",
        language_of(lang),
        "/",
        acknowledge_days=settings.intake.acknowledge_days,
        feedback_months=settings.intake.feedback_months,
    )


REPORT_PATHS = {Channel.CITIZEN: "/report", Channel.EMPLOYEE: "/internal/report"}


async def posted_text(request: Request, settings: Settings) -> dict[str, str]:
    """An url-encoded form's fields; anything else (our pages send nothing else here) reads
    as an empty form, which the page answers with its errors. The report paths take bodies
    as large as a file (for the check page's send form), so a form without one is held here
    to what a report at its field limits needs."""
    limit = max(settings.http.max_body_bytes, FORM_MAX_BYTES)
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > limit:
        raise BodyTooLarge(limit)
    if not request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    except ValueError:  # undecodable: the page answers as for an empty form
        return {}


def _report_routes(channel: Channel) -> None:
    path = REPORT_PATHS[channel]

    @router.get(path, response_class=HTMLResponse, name=f"{channel.value}_report_form")
    async def report_form(settings: SettingsDep, now: Now, lang: Lang = None) -> HTMLResponse:
        pages = ReportPages(settings, channel, path)
        return pages.form_page(language_of(lang), ReportForm.blank(channel, pages.new_ticket(now)))

    @router.post(path, response_class=HTMLResponse, name=f"{channel.value}_report_post")
    async def report_post(
        request: Request,
        settings: SettingsDep,
        service: IntakeServiceDep,
        reporter: ReporterServiceDep,
        now: Now,
        lang: Lang = None,
    ) -> HTMLResponse:
        language = language_of(lang)
        if not same_origin(request):
            return refused_cross_site(language, path)
        pages = ReportPages(settings, channel, path)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            # The check page's "send" form, which may carry a file: never spooled to disk.
            return await pages.post_with_file(language, request, service, reporter, now)
        return await pages.post(language, await posted_text(request, settings), service, now)


for _channel in Channel:
    _report_routes(_channel)


@router.get(STATUS_PATH, response_class=HTMLResponse)
async def status_form(settings: SettingsDep, service: ReporterServiceDep, lang: Lang = None) -> HTMLResponse:
    return StatusPages(settings, service, language_of(lang)).receipt_page()


@router.post(STATUS_PATH, response_class=HTMLResponse)
async def status_post(
    request: Request, settings: SettingsDep, service: ReporterServiceDep, now: Now, lang: Lang = None
) -> HTMLResponse:
    language = language_of(lang)
    if not same_origin(request):
        return refused_cross_site(language, STATUS_PATH)
    posted = await posted_text(request, settings)
    pages = StatusPages(settings, service, language)
    if posted.get("step") == "open":
        return await pages.open(posted.get("receipt", "")[:200], now)
    return await pages.act(posted, now)


@router.post(STATUS_PATH + "/attachments", response_class=HTMLResponse)
async def status_upload(
    request: Request, settings: SettingsDep, service: ReporterServiceDep, now: Now, lang: Lang = None
) -> HTMLResponse:
    language = language_of(lang)
    if not same_origin(request):
        return refused_cross_site(language, STATUS_PATH)
    return await StatusPages(settings, service, language).upload(request, now)


@router.get(DRILL_PATH, response_class=HTMLResponse)
async def drill_form(settings: SettingsDep, lang: Lang = None) -> HTMLResponse:
    return DrillPages(settings, language_of(lang)).code_page()


@router.post(DRILL_PATH, response_class=HTMLResponse)
async def drill_post(
    request: Request,
    settings: SettingsDep,
    participation: ParticipationServiceDep,
    intake: IntakeServiceDep,
    now: Now,
    lang: Lang = None,
) -> HTMLResponse:
    language = language_of(lang)
    if not same_origin(request):
        return refused_cross_site(language, DRILL_PATH)
    posted = await posted_text(request, settings)
    return await DrillPages(settings, language).post(posted, participation, intake, now)


@cache
def _static(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


@router.get("/static/{name}", responses=problem_responses(404))
async def static(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return render("not_found.html", language_of(None), "/", status_code=404)
    return static_file(_static(name), media_type)
