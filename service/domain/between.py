"""What changed between two dates: every entry whose status on `to` differs from its status on
`from` (the "what do I need to re-screen" question).

Everything is loaded in a handful of queries (lists, treatments, entries with their changes
and observations) and each entry is answered for the two dates; entry-less countries are
left out, since nothing recorded can make them differ. An entry `unknown` on either date is
not news (moving from "not yet observed" to "observed" is not a change): those are reported
apart.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import lookups
from service.domain.countries import Country
from service.domain.errors import InvalidInput
from service.domain.statuses import Answer
from service.domain.timeline import ordered
from service.models import ControlList, Entry, Treatment


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
) -> dict[str, Any]:
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
    order = {cl.id: i for i, cl in enumerate(lists)}
    lists_by_id = {cl.id: cl for cl in lists}
    moved: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    for code, lid in sorted(pairs, key=lambda p: (p[0], order[p[1]])):
        control_list = lists_by_id[lid]
        before = changes.answer(control_list, code, from_, known_at)
        after = changes.answer(control_list, code, to, known_at)
        if before["status"] == after["status"]:
            continue
        entry = by_pair.get((code, lid))
        if entry is None and (as_code := treated_as.get((code, lid))) is not None:
            entry = by_pair.get((as_code, lid))
        change_documents = (
            [
                lookups.change_document(c, control_list, entry.country_code)
                for c in ordered(entry.changes, known_at)
                if c.effective_on is not None and from_ < c.effective_on <= to
            ]
            if entry is not None
            else []
        )
        item = {
            "country": lookups.country_summary(lookups._country(code)),
            "list": lookups.list_ref(control_list),
            "from_": before,
            "to": after,
            "restrictions_changed": before["restrictions_apply"] != after["restrictions_apply"],
            "changes": change_documents,
        }
        if Answer.UNKNOWN in (before["status"], after["status"]):
            unknown.append(item)
        else:
            moved.append(item)
    return {
        "from_": from_,
        "to": to,
        "known_at": known_at,
        "count": len(moved),
        "entries": moved,
        "unknown_count": len(unknown),
        "unknown": unknown,
    }
