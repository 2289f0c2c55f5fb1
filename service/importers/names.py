"""EAR destination names (as the regulation writes them) to ISO 3166-1 alpha-2."""

import re

from service.domain.countries import registry
from service.importers.errors import UnrecognisedFormat

# Spellings the regulation's own lists use that the country registry does not know.
EAR_SPELLINGS = {
    "cote d'lvoire": "CI",  # Country Group B writes a lower-case L for the I
}

_FOOTNOTE_MARK = re.compile(r"\s*\d+$")


def clean_name(text: str) -> str:
    """'Ukraine 4' -> 'Ukraine': a trailing footnote number is not part of the name."""
    return _FOOTNOTE_MARK.sub("", " ".join(text.split())).strip()


def country_code(name: str, where: str) -> str:
    """The alpha-2 code of an EAR name; an unknown name fails the whole import."""
    cleaned = clean_name(name)
    code = EAR_SPELLINGS.get(cleaned.casefold())
    if code is None:
        country = registry().resolve(cleaned) if cleaned else None
        if country is None:
            raise UnrecognisedFormat(f"{where}: {name!r} is not a destination this service knows.")
        code = country.alpha_2
    return code
