"""The pages: thin translations between HTTP and templates."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from app.api.deps import SettingsDep
from app.platform.problems import problem_responses
from app.web.i18n import HERE, language_of
from app.web.pages import render, static_file

router = APIRouter(include_in_schema=False)

# Served from the package by name: nothing else under static/ is reachable, and no path
# from the request ever reaches the file system.
STATIC_FILES = {"site.css": "text/css; charset=utf-8"}

Lang = Annotated[str | None, Query(alias="lang", max_length=8)]


@router.get("/", response_class=HTMLResponse)
async def home(settings: SettingsDep, lang: Lang = None) -> HTMLResponse:
    return render(
        "index.html",
        language_of(lang),
        "/",
        acknowledge_days=settings.intake.acknowledge_days,
        feedback_months=settings.intake.feedback_months,
    )


@cache
def _static(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


@router.get("/static/{name}", responses=problem_responses(404))
async def static(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return render("not_found.html", language_of(None), "/", status_code=404)
    return static_file(_static(name), media_type)
