"""The eCFR parser: the fixture reproduces the seeds exactly, and shapes it does not know fail loudly."""

import csv
from pathlib import Path

import pytest

from service.importers.ecfr import COLUMNS, parse_part_740
from service.importers.errors import UnrecognisedFormat

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "ecfr"
JULY = FIXTURES / "part740-2026-07-23.xml"
DECEMBER = FIXTURES / "part740-2026-12-01.xml"


def seeded_table() -> dict[str, set[str]]:
    with (ROOT / "seeds" / "reference" / "ear_country_groups.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {column: {r["iso2"] for r in rows if r[column.replace(":", "")] == "X"} for column in COLUMNS}


def test_the_fixture_of_2026_07_23_is_exactly_the_seeded_table():
    assert parse_part_740(JULY.read_bytes()).members == seeded_table()


def test_the_later_fixture_differs_only_by_vietnams_x_under_d1():
    july, december = parse_part_740(JULY.read_bytes()), parse_part_740(DECEMBER.read_bytes())

    differences = {
        c: july.members[c] ^ december.members[c] for c in COLUMNS if july.members[c] != december.members[c]
    }
    assert differences == {"D:1": {"VN"}}
    assert "VN" in december.members["D:3"]


def test_the_traps_of_the_format_are_read_right():
    members = parse_part_740(JULY.read_bytes()).members
    assert "UA" in members["A:2"]  # "Ukraine 4": a footnote mark, not part of the name
    assert "CI" in members["B"]  # "Cote d'lvoire", as Group B spells it
    assert "CD" in members["B"] and "CD" in members["D:5"]
    assert "MO" in members["D:1"] and "MO" not in members["D:5"]  # Macau is not in D:5
    assert "HK" not in set().union(*members.values())  # no row since 2020-12-23
    assert "CU" not in members["E:1"] and "CU" in members["E:2"]
    # Supplement No. 3's list (ENC favourable treatment) is not Country Group B
    assert len(members["B"]) == 173


def _mutate(old: str, new: str, count: int = 1) -> bytes:
    text = JULY.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, count).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not xml at all", "not well-formed"),
        (b"<ECFR/>", "DIV9"),
        (
            _mutate('N="Supplement No. 1 to Part 740"', 'N="Supplement No. 9 to Part 740"'),
            "DIV9",
        ),  # the phrase still occurs in the sections' cross-references
        (
            _mutate("<CAPTION><P>Country Group D</P></CAPTION>", "<CAPTION><P>Table 2</P></CAPTION>"),
            "Group D",
        ),
        (_mutate("[D:1] National Security", "[D:2] National Security"), "columns"),
        (_mutate('<TD align="left" class="gpovtop">Vietnam</TD>', "<TD>Atlantis</TD>"), "Atlantis"),
        (
            _mutate('<TD align="left" class="gpovtop">Vietnam</TD>', "<TD>Vietnam</TD><TD/>"),
            "cells",
        ),  # an extra cell would shift every column after it
        (_mutate('<TD align="center" class="gpovtop">X</TD>', "<TD>Y</TD>"), "neither X nor empty"),
        (_mutate("<HD1>Country Group B&#x2014;Countries</HD1>", "<HD1>Other countries</HD1>"), "Group B"),
        (_mutate("<SCOL2>", "<GPOTABLE>").replace(b"</SCOL2>\n<TABLE", b"</GPOTABLE>\n<TABLE"), "Group B"),
    ],
)
def test_a_shape_the_parser_does_not_know_fails_loudly(data, message):
    with pytest.raises(UnrecognisedFormat, match=message):
        parse_part_740(data)


def test_a_document_entity_bomb_is_refused():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>'
    with pytest.raises(UnrecognisedFormat):
        parse_part_740(bomb)
