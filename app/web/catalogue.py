"""The pages' message catalogues: what the templates ask for, and the `.po` files.

    python -m app.web.catalogue        # adds new messages to every .po file, drops gone ones

Messages are written in English (the msgid); `en` leaves them untranslated, `ko` gives
each its Korean. A test refuses a template message without a Korean translation."""

from __future__ import annotations

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from app.domain.intake import Language
from app.web.i18n import HERE, catalogue_path

# The templates' `_()` and the Python code's `N_()` (messages translated where they are shown).
METHOD_MAP = [("templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS_MAP = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}


def template_messages() -> list[str]:
    """Every message the pages ask for, in order of first use."""
    found: dict[str, None] = {}
    for _, _, message, _, _ in extract_from_dir(HERE, method_map=METHOD_MAP, options_map=OPTIONS_MAP, keywords=KEYWORDS):
        found[message if isinstance(message, str) else message[0]] = None
    return list(found)


def read_catalogue(language: Language) -> Catalog:
    with catalogue_path(language).open("rb") as po:
        return read_po(po, locale=language.value)


def update() -> None:
    messages = template_messages()
    for language in Language:
        path = catalogue_path(language)
        old = read_catalogue(language) if path.exists() else Catalog(locale=language.value)
        new = Catalog(
            locale=language.value,
            project="Clean Window",
            version="1",
            copyright_holder="Clean Window",
            msgid_bugs_address="",
            creation_date=old.creation_date,
            revision_date=old.revision_date,
            last_translator="Clean Window",
            language_team=language.value,
            fuzzy=False,
        )
        new.header_comment = f"# {language.value} messages of the Clean Window pages."
        for message in messages:
            previous = old.get(message)
            new.add(message, previous.string if previous else "")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as po:
            write_po(po, new, width=100, omit_header=False, no_location=True)


if __name__ == "__main__":
    update()
