"""The eCFR's XML of 15 CFR part 740: every column of Supplement No. 1's Country Groups.

Shape (as the eCFR versioner API serves `full/{date}/title-15.xml?part=740`):
the `<DIV9 N="Supplement No. 1 to Part 740">` element holds Country Groups A, D
and E as `<TABLE>`s named by their `<CAPTION>` (header cells `[A:1] …`, rows
`<TR>` of `<TD>` with "X" or nothing; footnotes are rows of prose) and Country
Group B as a heading followed by a `<SCOL2>` list. Anything else is refused:
a wrong table is worse than no table.
"""

import re
from dataclasses import dataclass, field
from datetime import date
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from service.importers.errors import UnrecognisedFormat
from service.importers.names import country_code

SUPPLEMENT = "Supplement No. 1 to Part 740"
CITATION = "15 CFR part 740, Supplement No. 1"
TITLE = "15 CFR Part 740, Supplement No. 1 (Country Groups), eCFR"
PUBLISHER = "Office of the Federal Register and Government Publishing Office (eCFR)"

# Each table's columns, in the order the regulation prints them.
TABLES = {
    "A": ["A:1", "A:2", "A:3", "A:4", "A:5", "A:6"],
    "D": ["D:1", "D:2", "D:3", "D:4", "D:5"],
    "E": ["E:1", "E:2"],
}
COLUMNS = [*TABLES["A"], "B", *TABLES["D"], *TABLES["E"]]

_HEADER_CODE = re.compile(r"\[?\b([ADE]):\s*(\d)\b\]?")
_MARK = re.compile(r"^X?(?:\s*\d+)?$", re.IGNORECASE)
_FOOTNOTE = re.compile(r"^(?:\d+\s|\([a-z0-9]+\)\s)", re.IGNORECASE)
_B_HEADING = re.compile(r"^Country Group B\b", re.IGNORECASE)


@dataclass
class CountryGroupTable:
    """Members of each column (alpha-2 codes), as the supplement lists them on `issue_date`."""

    issue_date: date | None
    members: dict[str, set[str]] = field(default_factory=dict)


def text_of(element: Element) -> str:
    # Pieces joined by a space: "Ukraine<SU>4</SU>" is "Ukraine 4", not "Ukraine4".
    return " ".join(" ".join(element.itertext()).split())


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse_xml(data: bytes | str, what: str) -> Element:
    try:
        return ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise UnrecognisedFormat(f"{what} is not well-formed XML: {exc}") from exc


def find_supplement(root: Element) -> Element:
    """The DIV9 element of Supplement No. 1 (not a cross-reference to it in a section)."""
    found = [
        el
        for el in root.iter()
        if _local(el.tag) == "DIV9"
        and " ".join((el.get("N") or "").split()).casefold() == SUPPLEMENT.casefold()
    ]
    if len(found) != 1:
        raise UnrecognisedFormat(
            f'Expected one <DIV9 N="{SUPPLEMENT}"> element, found {len(found)}: '
            "is this the eCFR XML of 15 CFR part 740?"
        )
    return found[0]


def _caption_group(table: Element) -> str | None:
    caption = next((c for c in table if _local(c.tag) == "CAPTION"), None)
    if caption is None:
        return None
    match = re.match(r"^Country Group ([ADE])\b(?!:)", text_of(caption))
    return match.group(1) if match else None


def _cells(row: Element, tag: str) -> list[str]:
    return [text_of(cell) for cell in row if _local(cell.tag) == tag]


def parse_group_table(table: Element, group: str) -> dict[str, set[str]]:
    columns = TABLES[group]
    header_rows = [row for row in table.iter() if _local(row.tag) == "TR" and _cells(row, "TH")]
    if len(header_rows) != 1:
        raise UnrecognisedFormat(f"Country Group {group}: expected one header row, found {len(header_rows)}.")
    headers = _cells(header_rows[0], "TH")
    found = []
    for header in headers[1:]:
        match = _HEADER_CODE.search(header)
        found.append(f"{match.group(1)}:{match.group(2)}" if match else header)
    if found != columns:
        raise UnrecognisedFormat(
            f"Country Group {group}: columns are {found}, expected {columns}; "
            "refusing to guess which is which."
        )
    members: dict[str, set[str]] = {column: set() for column in columns}
    bodies = [el for el in table if _local(el.tag) == "TBODY"]
    if len(bodies) != 1:
        raise UnrecognisedFormat(f"Country Group {group}: expected one <TBODY>, found {len(bodies)}.")
    seen: set[str] = set()
    for row in bodies[0]:
        if _local(row.tag) != "TR":
            continue
        # Every <TD> is a position, empty (<TD/>) or not: dropping one would shift the columns.
        cells = _cells(row, "TD")
        if not cells or (not cells[0] and not any(cells)):
            continue
        name = cells[0]
        if _FOOTNOTE.match(name) or len(name) > 80:
            continue  # a footnote printed as a row
        where = f"Country Group {group}, row {name!r}"
        if len(cells) != len(columns) + 1:
            raise UnrecognisedFormat(f"{where}: {len(cells) - 1} cells, expected {len(columns)}.")
        code = country_code(name, where)
        if code in seen:
            raise UnrecognisedFormat(f"{where}: a second row for {code}.")
        seen.add(code)
        for column, cell in zip(columns, cells[1:], strict=True):
            if not _MARK.match(cell):
                raise UnrecognisedFormat(f"{where}, column {column}: {cell!r} is neither X nor empty.")
            if cell[:1].upper() == "X":
                members[column].add(code)
    if not seen:
        raise UnrecognisedFormat(f"Country Group {group}: the table has no country rows.")
    return members


def parse_group_b(supplement: Element) -> set[str]:
    """Country Group B: the `<SCOL2>` list that follows its heading."""
    children = list(supplement)
    headings = [
        i
        for i, el in enumerate(children)
        if _local(el.tag).startswith("HD") and _B_HEADING.match(text_of(el))
    ]
    if len(headings) != 1:
        raise UnrecognisedFormat(f"Country Group B: expected one heading, found {len(headings)}.")
    following = children[headings[0] + 1 :]
    lists = [el for el in following[:2] if _local(el.tag) == "SCOL2"]
    if not lists:
        raise UnrecognisedFormat("Country Group B: no <SCOL2> list follows its heading.")
    members: set[str] = set()
    for item in lists[0]:
        if _local(item.tag) != "LI":
            raise UnrecognisedFormat(f"Country Group B: unexpected <{_local(item.tag)}> in the list.")
        name = text_of(item)
        if name:
            members.add(country_code(name, f"Country Group B, item {name!r}"))
    if not members:
        raise UnrecognisedFormat("Country Group B: the list is empty.")
    return members


def parse_part_740(data: bytes | str, issue_date: date | None = None) -> CountryGroupTable:
    """Every Country Group column of Supplement No. 1, or UnrecognisedFormat."""
    supplement = find_supplement(parse_xml(data, "The eCFR document"))
    tables: dict[str, list[Element]] = {}
    for table in supplement.iter():
        if _local(table.tag) == "TABLE":
            group = _caption_group(table)
            if group is not None:
                tables.setdefault(group, []).append(table)
    result = CountryGroupTable(issue_date=issue_date)
    for group in TABLES:
        found = tables.get(group, [])
        if len(found) != 1:
            raise UnrecognisedFormat(
                f"Expected one table captioned 'Country Group {group}', found {len(found)}."
            )
        result.members.update(parse_group_table(found[0], group))
    result.members["B"] = parse_group_b(supplement)
    return result


def source_url(issue_date: date) -> str:
    """The human-readable eCFR page of the supplement on that date."""
    return (
        f"https://www.ecfr.gov/on/{issue_date.isoformat()}/title-15/subtitle-B/chapter-VII/subchapter-C/"
        "part-740/appendix-Supplement%20No.%201%20to%20Part%20740"
    )


def source(issue_date: date) -> dict:
    """The table as a `regulation` source: the codified text in force on its issue date."""
    return {
        "kind": "regulation",
        "title": f"{TITLE} as of {issue_date.isoformat()}",
        "publisher": PUBLISHER,
        "url": source_url(issue_date),
        "published_on": issue_date,
        "citation": CITATION,
    }
