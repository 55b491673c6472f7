"""The pages' languages: one Jinja2 environment per language, with that language's
message catalogue installed. Catalogues are the `.po` files under `locale/`, compiled in
memory at start, so no generated `.mo` file is kept in the tree."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.domain.intake import Language

HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"
DOMAIN = "messages"
DEFAULT_LANGUAGE = Language.KO


def catalogue_path(language: Language) -> Path:
    return LOCALE_DIR / language.value / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: Language) -> Translations:
    with catalogue_path(language).open("rb") as po:
        catalog = read_po(po, locale=language.value)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def environment(language: Language) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def language_of(requested: str | None) -> Language:
    """`?lang=en` or `?lang=ko`; anything else is the default, Korean."""
    try:
        return Language(requested) if requested else DEFAULT_LANGUAGE
    except ValueError:
        return DEFAULT_LANGUAGE


def translate(language: Language, message: str, **params: object) -> str:
    """A message from Python code (marked `N_` where it is written), in `language`."""
    translated = translations(language).gettext(message)
    return translated % params if params else translated
