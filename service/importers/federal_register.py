"""Federal Register API documents from BIS on 15 CFR 740/738: rules and public-inspection filings.

A document is the JSON the API returns (`/api/v1/documents/{number}.json`, an item of
`documents.json`'s `results`, or of `public-inspection-documents/current.json`).
What a rule changes is in its full-text XML: `<REGTEXT PART="740" TITLE="15">`
blocks whose `<AMDPAR>`s say what is amended, followed by the new rows of the
Country Group tables (`<GPOTABLE>` of `<ROW>`s of `<ENT>`s). Mapping prose to
entries is heuristic, so only plain forms are mapped ("removing the entry for
“X” from Country Group D", "adding “X” to Country Group B", a revised row);
anything else makes a `review` proposal that carries the document to a person.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, overload
from xml.etree.ElementTree import Element

from service.importers.ecfr import TABLES, _local, parse_xml, text_of
from service.importers.errors import UnrecognisedFormat
from service.importers.names import country_code

BIS = "industry-and-security-bureau"
PARTS = {738, 740}
_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,30}$", re.IGNORECASE)
_QUOTED = re.compile(r"[“\"]([^”\"]+)[”\"]")
_GROUP_REF = re.compile(r"Country Groups?\s+((?:[ABDE](?::\d)?(?:\s*,\s*|\s+and\s+|\s*,\s*and\s+)?)+)")
_CODE = re.compile(r"\b([ABDE])(?::(\d))?\b")
_STARS = re.compile(r"^[*\s]+$")


@dataclass
class FRDocument:
    document_number: str
    public_inspection: bool
    type: str
    title: str
    publication_date: date
    effective_on: date | None
    filed_on: date | None
    citation: str | None
    url: str
    full_text_xml_url: str | None
    abstract: str | None
    cfr_parts: set[int] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"{'fr-pi' if self.public_inspection else 'fr'}:{self.document_number}"

    def details(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "document_number": self.document_number,
            "type": self.type,
            "public_inspection": self.public_inspection,
            "citation": self.citation,
            "publication_date": self.publication_date,
            "effective_on": self.effective_on,
            "filed_on": self.filed_on,
            "abstract": self.abstract,
            "url": self.url,
            "full_text_xml_url": self.full_text_xml_url,
        }


@overload
def _date(value: Any, name: str, number: str) -> date: ...
@overload
def _date(value: Any, name: str, number: str, *, required: bool) -> date | None: ...
def _date(value: Any, name: str, number: str, *, required: bool = True) -> date | None:
    if value in (None, "") and not required:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise UnrecognisedFormat(
            f"FR document {number}: {name} {value!r} is not a date (YYYY-MM-DD)."
        ) from exc


def _filed_on(value: Any, number: str) -> date:
    try:
        # The filing time carries its own offset (Eastern time): its date there is the filing day.
        return datetime.fromisoformat(value).date()
    except (TypeError, ValueError) as exc:
        raise UnrecognisedFormat(f"FR document {number}: filed_at {value!r} is not a date-time.") from exc


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and re.match(r"^https?://[^\s]+$", value) else None


def parse_document(data: Any) -> FRDocument:
    """One document of the API, or UnrecognisedFormat (also for one that is not BIS's on 740/738)."""
    if not isinstance(data, dict):
        raise UnrecognisedFormat("A Federal Register document is a JSON object.")
    number = data.get("document_number")
    if not isinstance(number, str) or not _NUMBER.match(number):
        raise UnrecognisedFormat(f"document_number {number!r} is missing or not an FR document number.")
    for name in ("title", "type"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise UnrecognisedFormat(f"FR document {number}: {name} is missing.")
    agencies = data.get("agencies")
    if not isinstance(agencies, list) or not all(isinstance(a, dict) for a in agencies):
        raise UnrecognisedFormat(f"FR document {number}: agencies is missing or not a list of objects.")
    if not any(a.get("slug") == BIS for a in agencies):
        raise UnrecognisedFormat(f"FR document {number} is not from the Bureau of Industry and Security.")
    public_inspection = "filed_at" in data
    parts: set[int] = set()
    references = data.get("cfr_references")
    if references is not None:
        if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
            raise UnrecognisedFormat(f"FR document {number}: cfr_references is not a list of objects.")
        parts = {
            int(r["part"]) for r in references if str(r.get("title")) == "15" and str(r.get("part")).isdigit()
        }
        if not parts & PARTS:
            raise UnrecognisedFormat(f"FR document {number} does not amend 15 CFR part 740 or 738.")
    elif not public_inspection:
        raise UnrecognisedFormat(f"FR document {number}: cfr_references is missing.")
    if not public_inspection and data["type"] != "Rule":
        raise UnrecognisedFormat(
            f"FR document {number} is a {data['type']!r}, not a rule: only rules change the lists."
        )
    url = _url(data.get("html_url")) or f"https://www.federalregister.gov/d/{number}"
    if public_inspection:
        url = _url(data.get("pdf_url")) or _url(data.get("html_url")) or url
    return FRDocument(
        document_number=number,
        public_inspection=public_inspection,
        type=data["type"],
        title=" ".join(data["title"].split()),
        publication_date=_date(data.get("publication_date"), "publication_date", number),
        effective_on=_date(data.get("effective_on"), "effective_on", number, required=False),
        filed_on=_filed_on(data.get("filed_at"), number) if public_inspection else None,
        citation=data.get("citation") if isinstance(data.get("citation"), str) else None,
        url=url,
        full_text_xml_url=_url(data.get("full_text_xml_url")),
        abstract=data.get("abstract") if isinstance(data.get("abstract"), str) else None,
        cfr_parts=parts,
    )


def parse_documents(payload: bytes | str | Any) -> list[FRDocument]:
    """A single document, or a page of them (`results`), as the API returns them."""
    if isinstance(payload, bytes | str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise UnrecognisedFormat(f"The Federal Register document is not JSON: {exc}") from exc
    if isinstance(payload, dict) and "results" in payload:
        if not isinstance(payload["results"], list):
            raise UnrecognisedFormat("results is not a list.")
        return [parse_document(item) for item in payload["results"]]
    return [parse_document(payload)]


# --- full text ----------------------------------------------------------------------


@dataclass
class Amendments:
    """What a rule's text changes: (column, country, member afterwards), and what could not be mapped."""

    changes: list[tuple[str, str, bool]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    touches_supplement: bool = False


def _table_rows(table: Element) -> tuple[str, dict[str, dict[str, bool]]]:
    """A GPOTABLE of the supplement: its group and each printed row's membership by column."""
    title = next((text_of(t) for t in table if _local(t.tag) == "TTITLE"), "")
    match = re.match(r"^Country Group ([ADE])\b(?!:)", title)
    if not match:
        raise UnrecognisedFormat(f"A table titled {title!r} is not a Country Group table.")
    group = match.group(1)
    boxhd = next((b for b in table if _local(b.tag) == "BOXHD"), None)
    headers = [text_of(c) for c in boxhd if _local(c.tag) == "CHED"] if boxhd is not None else []
    found: list[str] = []
    for header in headers[1:]:
        heading = re.search(r"\b([ADE]):\s*(\d)\b", header)
        found.append(f"{heading.group(1)}:{heading.group(2)}" if heading else header)
    if found != TABLES[group]:
        raise UnrecognisedFormat(f"Country Group {group}: columns are {found}, expected {TABLES[group]}.")
    rows: dict[str, dict[str, bool]] = {}
    for row in table:
        if _local(row.tag) != "ROW":
            continue
        cells = [text_of(e) for e in row if _local(e.tag) == "ENT"]
        if not cells or _STARS.match(cells[0]):
            continue  # "* * *": rows left out of the amendment
        if len(cells) != len(found) + 1:
            raise UnrecognisedFormat(f"Country Group {group}, row {cells[0]!r}: {len(cells) - 1} cells.")
        code = country_code(cells[0], f"Country Group {group}, row {cells[0]!r}")
        marks: dict[str, bool] = {}
        for column, cell in zip(found, cells[1:], strict=True):
            if not re.match(r"^X?(?:\s*\d+)?$", cell, re.IGNORECASE):
                raise UnrecognisedFormat(
                    f"Country Group {group}, row {cells[0]!r}: {cell!r} is neither X nor empty."
                )
            marks[column] = cell[:1].upper() == "X"
        rows[code] = marks
    return group, rows


def _columns(text: str) -> list[tuple[str, str | None]]:
    """Groups (and columns) an amendment names: [('D', '1'), ('B', None)]."""
    named: list[tuple[str, str | None]] = []
    for reference in _GROUP_REF.finditer(text):
        named.extend((m.group(1), m.group(2)) for m in _CODE.finditer(reference.group(1)))
    return named


def parse_amendments(data: bytes | str) -> Amendments:
    """What a rule's full-text XML amends in Supplement No. 1 to part 740."""
    root = parse_xml(data, "The Federal Register full text")
    result = Amendments()
    for regtext in root.iter():
        if _local(regtext.tag) != "REGTEXT" or regtext.get("TITLE") != "15" or regtext.get("PART") != "740":
            continue
        rows: dict[str, dict[str, dict[str, bool]]] = {}
        for table in regtext.iter():
            if _local(table.tag) == "GPOTABLE":
                try:
                    group, printed = _table_rows(table)
                except UnrecognisedFormat as exc:
                    result.unmapped.append(exc.detail)
                    continue
                rows.setdefault(group, {}).update(printed)
        used: set[tuple[str, str]] = set()
        for amdpar in (el for el in regtext.iter() if _local(el.tag) == "AMDPAR"):
            text = text_of(amdpar)
            if "Supplement No. 1 to part 740" in text or "Country Group" in text:
                result.touches_supplement = True
            names = _QUOTED.findall(text)
            columns = _columns(text)
            if not names or not columns:
                if names or columns:
                    result.unmapped.append(f"Not mapped: {text!r}")
                continue
            verb = text.casefold()
            adding, removing, revising = ("add" in verb), ("remov" in verb), ("revis" in verb)
            if [adding, removing, revising].count(True) != 1:
                result.unmapped.append(f"Not mapped (more than one kind of amendment): {text!r}")
                continue
            for name in names:
                try:
                    code = country_code(name, f"Amendment {text!r}")
                except UnrecognisedFormat as exc:
                    result.unmapped.append(exc.detail)
                    continue
                for group, number in columns:
                    targets = [f"{group}:{number}"] if number else (["B"] if group == "B" else TABLES[group])
                    if removing:
                        result.changes.extend((column, code, False) for column in targets)
                    elif group == "B" and adding:
                        result.changes.append(("B", code, True))
                    elif number and adding:
                        result.changes.append((targets[0], code, True))
                    elif code in rows.get(group, {}):
                        used.add((group, code))
                        result.changes.extend(
                            (column, code, member) for column, member in rows[group][code].items()
                        )
                    else:
                        result.unmapped.append(f"No new row for {name!r} in Country Group {group}: {text!r}")
        for group, printed in rows.items():
            for code, marks in printed.items():
                if (group, code) not in used:  # a printed row no amendment named: it is still the new text
                    result.changes.extend((column, code, member) for column, member in marks.items())
    return result


def source(document: FRDocument) -> dict[str, Any]:
    """The document as a `regulation` source (FederalRegister.gov; the official edition is on govinfo)."""
    if document.public_inspection:
        return {
            "kind": "regulation",
            "title": f"{document.title} (filed for public inspection)",
            "publisher": "Office of the Federal Register, public inspection desk",
            "url": document.url,
            "published_on": document.filed_on,
            "citation": f"FR Doc. {document.document_number}",
        }
    citation = f"{document.citation}; FR Doc. {document.document_number}" if document.citation else None
    return {
        "kind": "regulation",
        "title": document.title,
        "publisher": "Bureau of Industry and Security, in the Federal Register",
        "url": document.url,
        "published_on": document.publication_date,
        "citation": citation or f"FR Doc. {document.document_number}",
    }
