"""The bundled scenario library: ready-made drill scenarios in Korean and English.

`scenarios.yaml`, next to this module, holds realistic situations from the areas Korean
integrity evaluations call vulnerable (gifts, conflicts of interest, contracts and permits,
subsidies, hiring, abuse of power, embezzlement, information security) and decoys that look
like misconduct but should not be reported. Every name in it is invented.

A coordinator uses an entry in a campaign either as `{"library": "<slug>"}`, a copy of the
bundled scenario, or by copying the full scenario (`GET /api/v1/drills/scenarios`,
`cleanwindow drills scenarios`) and editing it. `slug` and `area` belong to the library
only; a campaign's scenario is the rest (title, brief, report, expected).

The file is read once, on first use, and a malformed one (a duplicate slug, a title or
brief missing a language, an unknown area) fails loudly rather than serving half a library.
Callers get copies: editing one changes nothing here.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from importlib import resources

import yaml

AREAS = (
    "solicitation_gifts",
    "conflict_of_interest",
    "contracts_permits",
    "subsidies",
    "hiring",
    "abuse_of_power",
    "embezzlement",
    "information_security",
    "decoy",
)
LANGUAGES = ("ko", "en")
FIELDS = {"slug", "area", "title", "brief", "report", "expected"}
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class ScenarioLibraryError(ValueError):
    """The bundled scenarios.yaml is malformed: a packaging or editing mistake, not user input."""


def library_scenarios() -> tuple[dict, ...]:
    """Every bundled scenario, in file order."""
    return copy.deepcopy(_load())


def library_scenario(slug: str) -> dict | None:
    """The bundled scenario with this slug, or None."""
    for scenario in _load():
        if scenario["slug"] == slug:
            return copy.deepcopy(scenario)
    return None


@cache
def _load() -> tuple[dict, ...]:
    text = resources.files(__package__).joinpath("scenarios.yaml").read_text(encoding="utf-8")
    return parse_library(text)


def parse_library(text: str) -> tuple[dict, ...]:
    """The scenarios in a library file's text, checked; ScenarioLibraryError if malformed."""
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, list) or not loaded:
        raise ScenarioLibraryError("scenarios.yaml must be a non-empty list of scenarios")
    seen: set[str] = set()
    for number, scenario in enumerate(loaded, start=1):
        _check(number, scenario, seen)
    return tuple(loaded)


def _check(number: int, scenario: object, seen: set[str]) -> None:
    where = f"scenarios.yaml, scenario {number}"
    if not isinstance(scenario, dict) or set(scenario) != FIELDS:
        raise ScenarioLibraryError(f"{where}: needs exactly the fields {sorted(FIELDS)}")
    slug = scenario["slug"]
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise ScenarioLibraryError(f"{where}: slug {slug!r} is not [a-z0-9-]")
    if slug in seen:
        raise ScenarioLibraryError(f"{where}: duplicate slug {slug!r}")
    seen.add(slug)
    if scenario["area"] not in AREAS:
        raise ScenarioLibraryError(f"{where} ({slug}): unknown area {scenario['area']!r}")
    for field in ("title", "brief"):
        text = scenario[field]
        if not isinstance(text, dict) or any(
            not isinstance(text.get(language), str) or not text[language].strip()
            for language in LANGUAGES
        ):
            raise ScenarioLibraryError(f"{where} ({slug}): {field} needs both ko and en text")
    if not isinstance(scenario["report"], dict) or not isinstance(scenario["expected"], dict):
        raise ScenarioLibraryError(f"{where} ({slug}): report and expected must be mappings")
