"""The Federal Register parsers: documents as the API returns them, amendments from the full text."""

import json
from datetime import date
from pathlib import Path

import pytest

from service.importers.errors import UnrecognisedFormat
from service.importers.federal_register import parse_amendments, parse_document, parse_documents, source

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "federal_register"
RULE = json.loads((FIXTURES / "rule-2026-23871.json").read_text(encoding="utf-8"))
FILED = json.loads((FIXTURES / "public-inspection-2026-23871.json").read_text(encoding="utf-8"))


def test_a_rule_as_the_api_returns_it():
    document = parse_document(RULE)

    assert document.key == "fr:2026-23871"
    assert (document.publication_date, document.effective_on) == (date(2026, 11, 27), date(2026, 11, 27))
    assert document.cfr_parts == {738, 740}
    assert source(document)["citation"] == "91 FR 88412; FR Doc. 2026-23871"
    assert source(document)["kind"] == "regulation"


def test_a_public_inspection_document_is_dated_by_its_filing():
    document = parse_document(FILED)

    assert document.public_inspection and document.key == "fr-pi:2026-23871"
    assert document.filed_on == date(2026, 11, 20)  # 08:45 Eastern, that day
    assert document.publication_date == date(2026, 11, 27)  # scheduled: not the source's date
    assert source(document)["published_on"] == date(2026, 11, 20)


def test_a_page_of_results_is_read_whole():
    assert [d.document_number for d in parse_documents(json.dumps({"count": 1, "results": [RULE]}))] == [
        "2026-23871"
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"document_number": None}, "document_number"),
        ({"agencies": [{"slug": "census-bureau", "name": "Census Bureau"}]}, "Industry and Security"),
        ({"agencies": "BIS"}, "agencies"),
        ({"cfr_references": [{"title": 15, "part": 744}]}, "740 or 738"),
        ({"type": "Proposed Rule"}, "not a rule"),
        ({"publication_date": "27 November 2026"}, "publication_date"),
        ({"title": ""}, "title"),
    ],
)
def test_documents_out_of_scope_or_malformed_are_refused(change, message):
    with pytest.raises(UnrecognisedFormat, match=message):
        parse_document({**RULE, **change})


@pytest.mark.parametrize("payload", [b"[1, 2", b"[]", b'"a string"', b'{"results": {}}'])
def test_what_is_not_a_document_is_refused(payload):
    with pytest.raises(UnrecognisedFormat):
        parse_documents(payload)


def test_the_rules_revised_row_says_what_changes():
    amendments = parse_amendments((FIXTURES / "rule-2026-23871.xml").read_bytes())

    assert not amendments.unmapped
    assert ("D:1", "VN", False) in amendments.changes
    assert ("D:3", "VN", True) in amendments.changes


def regtext(*amdpars: str, body: str = "") -> bytes:
    paragraphs = "".join(f"<AMDPAR>{a}</AMDPAR>" for a in amdpars)
    return f'<RULE><REGTEXT PART="740" TITLE="15">{paragraphs}{body}</REGTEXT></RULE>'.encode()


def test_plain_additions_and_removals_are_mapped():
    amendments = parse_amendments(
        regtext(
            "a. Adding, in alphabetical order, an entry for “Vietnam” to Country Group B; and",
            "b. Removing “Nicaragua” from Country Groups D:1 and D:5.",
            "c. Removing the entry for “Cambodia” from Country Group D.",
        )
    )

    assert not amendments.unmapped
    assert ("B", "VN", True) in amendments.changes
    assert {("D:1", "NI", False), ("D:5", "NI", False)} <= set(amendments.changes)
    assert {(c, "KH", False) for c in ("D:1", "D:2", "D:3", "D:4", "D:5")} <= set(amendments.changes)


def test_what_cannot_be_mapped_with_confidence_is_said_not_guessed():
    amendments = parse_amendments(
        regtext(
            "Revising the entry for “Vietnam” in Country Group D.",  # but no new row is printed
            "Amending footnote 1 to Country Group D by revising “22 CFR 126.1”.",
        )
    )

    assert amendments.changes == []
    assert len(amendments.unmapped) == 2


def test_rows_that_are_not_a_country_group_table_are_not_read_as_one():
    body = "<GPOTABLE><TTITLE>Country Group D</TTITLE><BOXHD><CHED>Country</CHED><CHED>[D:1]</CHED></BOXHD></GPOTABLE>"
    amendments = parse_amendments(regtext(body=body))

    assert amendments.changes == [] and "columns" in amendments.unmapped[0]
