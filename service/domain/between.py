"""What changed between two dates: every entry whose status on `to` differs from its status on
`from` (the "what do I need to re-screen" question).

Everything is loaded in a handful of queries (lists, treatments, entries with their changes
and observations) and each entry is answered for the two dates; entry-less countries are
left out, since nothing recorded can make them differ. An entry `unknown` on either date is
not news (moving from "not yet observed" to "observed" is not a change): those are reported
apart.

The answer is paged over one sequence: the entries that moved, then those unknown on a date,
each by country, then list (lists by jurisdiction, then id). Moves come first because they are
what a re-screening acts on, and they are few beside the unknowns (a year of the seeds has a
handful against hundreds). A page is the next `limit` items of the sequence, each placed in
its section; the cursor is the last item's key, (section, country, jurisdiction, list id).
Every entry has to be answered for both dates to know the totals, but only the page's items
have their changes turned into documents, and at most `CHANGES_SHOWN` of them (the most recent).
"""

from datetime import date, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import lookups
from service.domain.countries import Country
from service.domain.errors import InvalidInput
from service.domain.statuses import Answer
from service.domain.timeline import ordered
from service.models import ControlList, Entry, Treatment

# The changes listed in one item: the most recent ones; `changes_total` counts them all, and the
# entry's history (newest first, paged) holds every one.
CHANGES_SHOWN = 50

# Where an item stands in the sequence: (0 for a move, 1 for an unknown, country code,
# list's jurisdiction, list id).
MoveKey = tuple[int, str, str, str]


class _Move(NamedTuple):
    key: MoveKey
    control_list: ControlList
    before: dict[str, Any]
    after: dict[str, Any]
    entry: Entry | None
    unknown: bool


def _lists(session: Session, list_id: str | None, jurisdiction: str | None) -> list[ControlList]:
    lists = lookups.by_jurisdiction(lookups.all_lists(session))
    if list_id is not None:
        lists = [lookups.get_list(session, list_id)]
    if jurisdiction is not None:
        known = sorted({cl.jurisdiction for cl in lookups.all_lists(session)})
        if jurisdiction not in known:
            raise InvalidInput(
                "Unknown 'jurisdiction'.",
                {"jurisdiction": [f"No list is kept by {jurisdiction!r}; known: {', '.join(known)}."]},
            )
        lists = [cl for cl in lists if cl.jurisdiction == jurisdiction]
    return lists


def changes_between(
    session: Session,
    from_: date,
    to: date,
    *,
    known_at: datetime | None = None,
    country: Country | None = None,
    list_id: str | None = None,
    jurisdiction: str | None = None,
    limit: int,
    cursor: MoveKey | None = None,
) -> dict[str, Any]:
    """A page of the entries that moved (and of those unknown on a date), after `cursor`."""
    lists = _lists(session, list_id, jurisdiction)
    list_ids = [cl.id for cl in lists]
    treatment_query = select(Treatment).where(Treatment.list_id.in_(list_ids))
    entry_criteria = [Entry.list_id.in_(list_ids)]
    if country is not None:
        treatment_query = treatment_query.where(Treatment.country_code == country.alpha_2)
    treatments = list(session.scalars(treatment_query))
    if country is not None:
        codes = {country.alpha_2} | {t.treated_as for t in treatments}
        entry_criteria.append(Entry.country_code.in_(codes))
    entries = lookups._entries(session, *entry_criteria)
    changes = lookups.Changes(entries, treatments)
    by_pair = {(e.country_code, e.list_id): e for e in entries}
    treated_as = {(t.country_code, t.list_id): t.treated_as for t in treatments}

    pairs = set(by_pair) | set(treated_as)
    if country is not None:
        pairs = {p for p in pairs if p[0] == country.alpha_2}
    lists_by_id = {cl.id: cl for cl in lists}
    moves: list[_Move] = []
    for code, lid in pairs:
        control_list = lists_by_id[lid]
        before = changes.answer(control_list, code, from_, known_at)
        after = changes.answer(control_list, code, to, known_at)
        if before["status"] == after["status"]:
            continue
        entry = by_pair.get((code, lid))
        if entry is None and (as_code := treated_as.get((code, lid))) is not None:
            entry = by_pair.get((as_code, lid))
        unknown = Answer.UNKNOWN in (before["status"], after["status"])
        key = (int(unknown), code, control_list.jurisdiction, lid)
        moves.append(_Move(key, control_list, before, after, entry, unknown))
    moves.sort(key=lambda move: move.key)

    following = [m for m in moves if m.key > cursor] if cursor is not None else moves
    selected = following[:limit]
    more = len(following) > limit
    return {
        "from_": from_,
        "to": to,
        "known_at": known_at,
        "count": sum(1 for m in moves if not m.unknown),
        "entries": [_item(m, from_, to, known_at) for m in selected if not m.unknown],
        "unknown_count": sum(1 for m in moves if m.unknown),
        "unknown": [_item(m, from_, to, known_at) for m in selected if m.unknown],
        "next_cursor": list(selected[-1].key) if more else None,
    }


def _item(move: _Move, from_: date, to: date, known_at: datetime | None) -> dict[str, Any]:
    """One moved entry, with its most recent changes between the dates (and how many there are)."""
    _section, code, _jurisdiction, lid = move.key
    entry = move.entry
    entry_code = entry.country_code if entry is not None else code  # a treated country's: the other's
    between = (
        [
            c
            for c in ordered(entry.changes, known_at)
            if c.effective_on is not None and from_ < c.effective_on <= to
        ]
        if entry is not None
        else []
    )
    history = lookups.entry_path(lid, entry_code)
    if known_at is not None:
        history += "?" + urlencode({"known_at": known_at.isoformat().replace("+00:00", "Z")})
    return {
        "country": lookups.country_summary(lookups._country(code)),
        "list": lookups.list_ref(move.control_list),
        "from_": move.before,
        "to": move.after,
        "restrictions_changed": move.before["restrictions_apply"] != move.after["restrictions_apply"],
        "changes": [
            lookups.change_document(c, move.control_list, entry_code) for c in between[-CHANGES_SHOWN:]
        ],
        "changes_total": len(between),
        "links": {"history": history},
    }
