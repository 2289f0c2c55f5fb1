"""Countries: ISO 3166-1 from pycountry, plus the names the EAR and the press use.

A reference may be an alpha-2, alpha-3 or numeric code or a name, in any case,
with or without accents: `VN`, `vnm`, `704`, `Viet Nam` and `Vietnam` all
resolve to Vietnam. Names are folded (case, accents, punctuation); codes are not: a
code is its ASCII letters or digits, in any case, with blanks around it at most.
Folded like a name, `Rè`, `+704` or an emoji before `VN` would land on a country
nobody wrote.
"""

import difflib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import pycountry


@dataclass(frozen=True, slots=True)
class Country:
    alpha_2: str
    alpha_3: str
    numeric: str | None
    name: str
    official_name: str | None
    common_name: str | None
    note: str | None = None

    @property
    def display_name(self) -> str:
        return self.common_name or self.name


# Destinations that ISO 3166-1 does not assign but the EAR lists.
EXTRA_COUNTRIES = [
    Country(
        alpha_2="XK",
        alpha_3="XKX",
        numeric=None,
        name="Kosovo",
        official_name="Republic of Kosovo",
        common_name=None,
        note="XK is a user-assigned code (not official ISO 3166-1), used by the EU and the EAR data.",
    ),
]

# Names used by 15 CFR 740 Supp. No. 1 and by the press that ISO's names,
# once accents, case and '&' are normalised, do not already match.
ALIASES = {
    "Brunei": "BN",
    "The Bahamas": "BS",
    "Bahamas, The": "BS",
    "Congo (Democratic Republic of)": "CD",
    "Congo (Democratic Republic of the)": "CD",
    "Democratic Republic of the Congo": "CD",
    "DR Congo": "CD",
    "DRC": "CD",
    "Congo (Republic of the)": "CG",
    "Republic of the Congo": "CG",
    "Congo-Brazzaville": "CG",
    "China (PRC)": "CN",
    "People's Republic of China": "CN",
    "PRC": "CN",
    "Cape Verde": "CV",
    "Gambia, The": "GM",
    "The Gambia": "GM",
    "Korea, North": "KP",
    "DPRK": "KP",
    "Korea, South": "KR",
    "Republic of Korea": "KR",
    "Burma": "MM",
    "Macau": "MO",
    "Russia": "RU",
    "South Sudan, Republic of": "SS",
    "Sint Maarten (the Dutch two-fifths of the island of Saint Martin)": "SX",
    "Sint Maarten": "SX",
    "Vatican City": "VA",
    "Vatican": "VA",
    "Holy See": "VA",
    "Ivory Coast": "CI",
    "Czech Republic": "CZ",
    "Turkey": "TR",
    "Turkiye": "TR",
    "Swaziland": "SZ",
    "Macedonia": "MK",
    "East Timor": "TL",
    "United Kingdom": "GB",
    "UK": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "United States": "US",
    "United States of America": "US",
    "USA": "US",
    "America": "US",
    "UAE": "AE",
    "Emirates": "AE",
    "Micronesia": "FM",
    "Palestine": "PS",
    "Kosovo": "XK",
    "Vietnam": "VN",
    "Viet Nam": "VN",
}


def normalise(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a name or code."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold().replace("&", " and ")
    text = re.sub(r"[^0-9a-z]+", " ", text)
    return " ".join(text.split())


class CountryRegistry:
    """Every country by alpha-2, with an index of every accepted reference."""

    def __init__(self, countries: list[Country], aliases: dict[str, str]):
        self._by_alpha_2 = {c.alpha_2: c for c in sorted(countries, key=lambda c: c.alpha_2)}
        self._codes: dict[str, Country] = {}  # lower-case codes
        self._names: dict[str, Country] = {}  # normalised names
        for country in self._by_alpha_2.values():
            for code in (country.alpha_2, country.alpha_3, country.numeric):
                if code:
                    self._codes[code.lower()] = country
            for name in (country.name, country.official_name, country.common_name):
                if name:
                    self._names.setdefault(normalise(name), country)
        for alias, alpha_2 in aliases.items():
            if alias.isascii() and alias.isalpha() and alias.isupper():  # UK, USA, DPRK: codes, in effect
                self._codes.setdefault(alias.lower(), self._by_alpha_2[alpha_2])
            else:
                self._names.setdefault(normalise(alias), self._by_alpha_2[alpha_2])

    def __iter__(self) -> Iterator[Country]:
        return iter(self._by_alpha_2.values())

    def __len__(self) -> int:
        return len(self._by_alpha_2)

    def get(self, alpha_2: str) -> Country | None:
        return self._by_alpha_2.get(alpha_2)

    def resolve(self, reference: str) -> Country | None:
        """The country a reference names (a code as written, or a name folded), or None."""
        code = reference.strip(" \t\r\n")
        if code.isascii() and code.isalnum():
            if code.isdigit() and len(code) < 3:
                code = code.zfill(3)  # numeric codes are often written without their zeros
            country = self._codes.get(code.lower())
            if country is not None:
                return country
        return self._names.get(normalise(reference))

    def suggest(self, reference: str, limit: int = 5) -> list[Country]:
        """Close matches for an unknown reference, best first."""
        key = normalise(reference)
        if not key:
            return []
        matches = difflib.get_close_matches(key, list(self._names), n=limit * 3, cutoff=0.6)
        prefix = [name for name in self._names if len(key) >= 3 and name.startswith(key)]
        seen: dict[str, Country] = {}
        coded = self._code_within(key)  # `+704`, `VN.`: the code the stray characters surround
        if coded is not None:
            seen[coded.alpha_2] = coded
        for name in prefix + matches:
            country = self._names[name]
            seen.setdefault(country.alpha_2, country)
        return list(seen.values())[:limit]

    def _code_within(self, key: str) -> Country | None:
        """The country whose code a folded reference holds once its blanks are gone (only ever
        suggested: a code is resolved only as written)."""
        code = key.replace(" ", "")
        if code.isdigit():
            code = code.lstrip("0").zfill(3)
        return self._codes.get(code)


@cache
def registry() -> CountryRegistry:
    countries = [
        Country(
            alpha_2=c.alpha_2,
            alpha_3=c.alpha_3,
            numeric=c.numeric,
            name=c.name,
            official_name=getattr(c, "official_name", None),
            common_name=getattr(c, "common_name", None),
        )
        for c in pycountry.countries
    ]
    return CountryRegistry(countries + EXTRA_COUNTRIES, ALIASES)
