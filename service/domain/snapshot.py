"""Snapshots: every list × country entry with its status on a date, as known at a moment,
streamed row by row (entries are read in batches, so memory stays flat in the number of rows).

A snapshot names the data version and the event sequence it reflects, read in the same
transaction as its rows: a client resumes the feed with `GET /v1/events?after=<sequence>`.
"""

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from service.domain import lookups
from service.domain.events import DATA_COUNTER, EVENTS_COUNTER
from service.domain.jsonable import jsonable
from service.models import Counter, Entry, Treatment

BATCH = 500

CSV_COLUMNS = [
    "list_id",
    "list_code",
    "list_name",
    "jurisdiction",
    "effect",
    "country",
    "country_name",
    "status",
    "restrictions_apply",
    "basis",
    "reason",
    "since",
    "observed_since",
    "effective_on",
    "announced_on",
    "expected_effective_on",
    "treated_as",
    "change_id",
    "evidence",
    "confidence",
    "source_urls",
    "source_citations",
]


@dataclass(frozen=True)
class Versions:
    data_version: int
    event_sequence: int


def versions(session: Session) -> Versions:
    values = dict(session.execute(select(Counter.name, Counter.value)).all())
    return Versions(data_version=int(values.get(DATA_COUNTER, 0)), event_sequence=int(values[EVENTS_COUNTER]))


def begin_snapshot(session: Session) -> None:
    """One consistent view for the whole stream: REPEATABLE READ on PostgreSQL; on SQLite an
    explicit read transaction, whose first read fixes its view (WAL) until the session closes."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        session.execute(text("BEGIN"))


def rows(session: Session, as_of: date, known_at: datetime | None) -> Iterator[dict[str, Any]]:
    """Every entry's answer on `as_of` (list by list, country by country), then the countries
    that take another's status on a list (Hong Kong as China)."""
    lists = {cl.id: cl for cl in lookups.all_lists(session)}
    treatments = list(session.scalars(select(Treatment).order_by(Treatment.list_id, Treatment.country_code)))
    treated = {
        (t.list_id, t.country_code) for t in treatments if lookups.treatment_applies(t, as_of, known_at)
    }
    # A server-side cursor on PostgreSQL (yield_per): closed however the stream ends.
    with session.scalars(
        select(Entry)
        .order_by(Entry.list_id, Entry.country_code)
        .options(selectinload(Entry.changes), selectinload(Entry.observations))
        .execution_options(yield_per=BATCH)
    ) as entries:
        for entry in entries:
            if (entry.list_id, entry.country_code) in treated:
                continue
            control_list = lists[entry.list_id]
            answer = lookups.answer(
                control_list, entry.country_code, entry.changes, as_of, known_at, entry.observations
            )
            yield {"country": lookups.country_summary(lookups._country(entry.country_code)), **answer}
            session.expunge(entry)  # keep the identity map (and memory) flat
    applying = [t for t in treatments if (t.list_id, t.country_code) in treated]
    if applying:
        changes = lookups._changes_for(session, sorted({t.country_code for t in applying}))
        for treatment in applying:
            answer = changes.answer(lists[treatment.list_id], treatment.country_code, as_of, known_at)
            yield {"country": lookups.country_summary(lookups._country(treatment.country_code)), **answer}


def _cell(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas; quote those."""
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(jsonable(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(row: dict[str, Any]) -> list[str]:
    pending = row.get("pending") or {}
    treated_as = row.get("treated_as")
    values = [
        row["list"]["id"],
        row["list"]["code"],
        row["list"]["name"],
        row["list"]["jurisdiction"],
        row["list"]["effect"],
        row["country"]["alpha_2"],
        row["country"]["name"],
        row["status"],
        row["restrictions_apply"],
        row["basis"],
        row["reason"],
        row["since"],
        row["observed_since"],
        row["effective_on"],
        pending.get("announced_on"),
        pending.get("expected_effective_on"),
        treated_as["treated_as"] if treated_as else None,
        row["change_id"],
        row["evidence"],
        row["confidence"],
        " | ".join(s.get("url") or "" for s in row["sources"]),
        " | ".join(s.get("citation") or "" for s in row["sources"] if s.get("citation")),
    ]
    return [_cell(v) for v in values]


def csv_chunks(stream: Iterator[dict[str, Any]]) -> Iterator[str]:
    """RFC 4180: a header row, CRLF line ends, fields quoted where needed; a UTF-8 BOM first so
    that spreadsheets read the names' accents right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(stream, 1):
        writer.writerow(csv_row(row))
        if n % BATCH == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def jsonl_chunks(stream: Iterator[dict[str, Any]], dump: Callable[[dict[str, Any]], Any]) -> Iterator[str]:
    """One JSON document a line: the API's own entry representation (`dump`)."""
    lines: list[str] = []
    for row in stream:
        lines.append(json.dumps(dump(row), ensure_ascii=False, separators=(",", ":")))
        if len(lines) >= BATCH:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"
