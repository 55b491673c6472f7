"""The drill coordinator's side of the `cleanwindow` command: `cleanwindow drills ...`.

Like the `cases` commands they use CLEANWINDOW_URL and CLEANWINDOW_TOKEN (a
drill_coordinator's) and print one line on standard error with exit code 1 when the
server refuses (2 for a missing token, an unusable URL or campaign file, or a usage
problem). What is shown only once (the injection token, receipts, participant codes) goes
to standard output, alone where a script would capture it; what a person should know about
it goes to standard error.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import typer

from app.client import render
from app.client.commands import JSON_OPTION, connect, fails_in_one_line, print_model
from app.client.errors import ClientError

drills_cli = typer.Typer(
    help="Mock corruption-report drills: campaigns, injections, participant codes and "
    "scorecards (drill coordinators).",
    no_args_is_help=True,
)

CAMPAIGN_ARGUMENT = typer.Argument(..., help="The campaign id (from `cleanwindow drills list`).")
CLOSE_WARNING = (
    "closing freezes the scorecard and purges the campaign's drill cases for good"
)


# --- campaign files ---------------------------------------------------------------------


def read_campaign_file(path: Path) -> dict[str, Any]:
    """The campaign body in FILE: JSON when it starts with `{`, YAML otherwise.

    Every problem with the file is a ClientError with exit code 2, like a bad key file; the
    campaign's content (names, dates, scenarios) is the server's to judge."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ClientError(f"campaign file {path} does not exist", 2) from None
    except UnicodeDecodeError:
        raise ClientError(f"campaign file {path} is not UTF-8 text", 2) from None
    except OSError as error:
        raise ClientError(f"cannot read campaign file {path}: {error.strerror}", 2) from None
    if text.lstrip().startswith("{"):
        body = parse_json(path, text)
    else:
        body = parse_yaml(path, text)
    if not isinstance(body, dict):
        raise ClientError(
            f"campaign file {path} does not hold a campaign: expected a mapping with name, "
            "starts_at, ends_at, blind and scenarios",
            2,
        )
    return plain_json(body)


def parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ClientError(
            f"campaign file {path} is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})",
            2,
        ) from None


def parse_yaml(path: Path, text: str) -> Any:
    try:
        import yaml  # only a YAML campaign file needs it
    except ImportError:
        raise ClientError(
            f"reading the YAML of {path} needs PyYAML (pip install pyyaml); "
            "or write the campaign as JSON",
            2,
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ClientError(f"campaign file {path} is not valid YAML: {problem}{where}", 2) from None


def plain_json(value: Any) -> Any:
    """YAML reads an unquoted `2026-12-01T09:00:00+09:00` as a datetime: send it as the
    ISO 8601 text it was. (A time without an offset stays without one, and the server says
    it needs one.)"""
    if isinstance(value, dict):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# --- commands ---------------------------------------------------------------------------


@drills_cli.command("create")
@fails_in_one_line
def drills_create(
    file: Path = typer.Option(
        ...,
        "--file",
        help="The campaign as YAML or JSON: name, starts_at, ends_at, blind, scenarios "
        '(full scenarios or {"library": SLUG} from `cleanwindow drills scenarios`).',
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a campaign and print its injection token, which is shown only this once."""
    body = read_campaign_file(file)
    with connect() as api:
        created = api.create_campaign(body)
    if as_json:
        typer.echo(render.as_json(created.model_dump(mode="json")))
    else:
        typer.echo(render.campaign_text(created))
        typer.echo("")
        typer.echo(f"injection token: {created.injection_token}")
    typer.echo(
        "cleanwindow: warning: the injection token is shown only now (the server keeps only a "
        "digest); store it safely: it files drill reports into this campaign",
        err=True,
    )


@drills_cli.command("list")
@fails_in_one_line
def drills_list(as_json: bool = JSON_OPTION) -> None:
    """Your campaigns, newest first."""
    with connect() as api:
        campaigns = api.campaigns()
    print_model(campaigns, as_json=as_json, text=lambda page: render.campaigns_table(page.items))


@drills_cli.command("show")
@fails_in_one_line
def drills_show(campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """One campaign: its state, window, counts and numbered scenarios."""
    with connect() as api:
        campaign = api.campaign(campaign_id)
    print_model(campaign, as_json=as_json, text=render.campaign_text)


@drills_cli.command("scenarios")
@fails_in_one_line
def drills_scenarios(as_json: bool = JSON_OPTION) -> None:
    """The bundled scenario library, in Korean and English.

    A campaign copies one with {"library": SLUG} in its scenarios."""
    with connect() as api:
        library = api.scenario_library()
    print_model(library, as_json=as_json, text=lambda page: render.library_table(page.items))


@drills_cli.command("inject")
@fails_in_one_line
def drills_inject(
    campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT,
    scenario: int | None = typer.Option(
        None, "--scenario", min=1, help="The scenario's number (default: the next in turn)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a scenario through intake as a drill report; print its receipt.

    The receipt (shown only now) opens the reporter's mailbox, to play the reporter."""
    with connect() as api:
        injected = api.inject(campaign_id, scenario)
    if as_json:
        typer.echo(render.as_json(injected.model_dump(mode="json")))
    else:
        typer.echo(injected.receipt)
    typer.echo(
        f"injected scenario {injected.scenario} into campaign {campaign_id}, received on "
        f"{injected.received_on}; the receipt is shown only now",
        err=True,
    )


@drills_cli.command("participants")
@fails_in_one_line
def drills_participants(
    campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT,
    count: int = typer.Option(..., "--count", min=1, max=1000, help="How many codes to issue."),
    cohort: str | None = typer.Option(
        None, "--cohort", help="A unit or group label; the scorecard counts per cohort."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue single-use participant codes and print them, one per line (shown only now)."""
    with connect() as api:
        issued = api.issue_codes(campaign_id, count, cohort)
    if as_json:
        typer.echo(render.as_json(issued.model_dump(mode="json")))
    else:
        for code in issued.codes:
            typer.echo(code)
    group = f" for cohort {render.printable(issued.cohort)}" if issued.cohort else ""
    typer.echo(
        f"issued {len(issued.codes)} participant codes{group} in campaign {campaign_id}; "
        "they are shown only now",
        err=True,
    )


@drills_cli.command("scorecard")
@fails_in_one_line
def drills_scorecard(
    campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT,
    as_csv: bool = typer.Option(False, "--csv", help="Print the server's CSV as it is."),
    as_json: bool = JSON_OPTION,
) -> None:
    """How the drill went: totals, one row per drill case, one per cohort (frozen at close)."""
    if as_csv and as_json:
        raise ClientError("--csv and --json do not go together: choose one", 2)
    with connect() as api:
        if as_csv:
            text = api.scorecard_csv(campaign_id)
            typer.echo(text, nl=not text.endswith("\n"))
            return
        card = api.scorecard(campaign_id)
    print_model(card, as_json=as_json, text=render.scorecard_text)


@drills_cli.command("pause")
@fails_in_one_line
def drills_pause(campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Pause a running campaign: its token and codes are refused until it resumes."""
    act(campaign_id, "pause", as_json)


@drills_cli.command("resume")
@fails_in_one_line
def drills_resume(campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Resume a paused campaign."""
    act(campaign_id, "resume", as_json)


@drills_cli.command("close")
@fails_in_one_line
def drills_close(
    campaign_id: uuid.UUID = CAMPAIGN_ARGUMENT,
    yes: bool = typer.Option(
        False, "--yes", help="Close without asking: the drill cases' purge cannot be undone."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Close a campaign for good: freeze its scorecard, purge its drill cases.

    Real cases are untouched. Asks first unless --yes; without a terminal to ask on,
    refuses unless --yes."""
    if not yes:
        confirm_close(campaign_id)
    act(campaign_id, "close", as_json)


def stdin_is_a_terminal() -> bool:
    return sys.stdin.isatty()


def confirm_close(campaign_id: uuid.UUID) -> None:
    # A script that forgot --yes must not hang on a question nobody sees, nor close.
    if not stdin_is_a_terminal():
        raise ClientError(f"{CLOSE_WARNING}; pass --yes to close campaign {campaign_id}", 2)
    with connect() as api:
        campaign = api.campaign(campaign_id)
    question = (
        f"Close campaign {render.printable(campaign.name)!r} ({campaign.drill_cases} drill cases)? "
        f"This {CLOSE_WARNING.removeprefix('closing ')}."
    )
    if not typer.confirm(question, default=False, err=True):
        raise ClientError(f"campaign {campaign_id} was not closed")


def act(campaign_id: uuid.UUID, action: str, as_json: bool) -> None:
    with connect() as api:
        campaign = api.act_on_campaign(campaign_id, action)
    if as_json:
        typer.echo(render.as_json(campaign.model_dump(mode="json")))
        return
    purged = ""
    if campaign.purged_cases is not None:
        purged = f"; {campaign.purged_cases} drill cases purged"
    typer.echo(f"campaign {campaign.id} is now {campaign.state}{purged}")
