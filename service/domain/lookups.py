"""Answers to "what is X's status?": on a date (`as_of`), as known at a moment (`known_at`).

Each function loads what it needs in a few queries and returns plain data
(dicts of Python values) that the API dumps with its schemas.
"""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.domain.countries import Country, registry
from service.domain.errors import UnknownList
from service.domain.statuses import PENDING, Answer, Effect, restrictions_apply
from service.domain.timeline import ordered, standing, timeline_key
from service.models import ControlList, Entry, StatusChange, Treatment


def country_summary(country: Country) -> dict[str, Any]:
    return {
        "alpha_2": country.alpha_2,
        "alpha_3": country.alpha_3,
        "numeric": country.numeric,
        "name": country.display_name,
        "iso_name": country.name,
        "official_name": country.official_name,
        "note": country.note,
    }


def list_ref(control_list: ControlList) -> dict[str, Any]:
    return {
        "id": control_list.id,
        "code": control_list.code,
        "name": control_list.name,
        "jurisdiction": control_list.jurisdiction,
        "effect": control_list.effect,
    }


def list_document(control_list: ControlList) -> dict[str, Any]:
    return {
        **list_ref(control_list),
        "authority": control_list.authority,
        "legal_basis": control_list.legal_basis,
        "url": control_list.url,
        "restrictive": control_list.effect == Effect.RESTRICTIVE,
        "membership_complete": control_list.membership_complete,
        "membership_complete_from": control_list.membership_complete_from,
        "description": control_list.description,
        "sources": control_list.sources,
        "treatments": [treatment_document(t) for t in control_list.treatments],
        "recorded_at": control_list.recorded_at,
        "updated_at": control_list.updated_at,
        "links": {
            "self": f"/v1/lists/{control_list.id}",
            "entries": f"/v1/lists/{control_list.id}/entries",
        },
    }


def treatment_document(treatment: Treatment) -> dict[str, Any]:
    return {
        "country": treatment.country_code,
        "treated_as": treatment.treated_as,
        "effective_on": treatment.effective_on,
        "recorded_at": treatment.recorded_at,
        "note": treatment.note,
        "sources": treatment.sources,
    }


def treatment_applies(treatment: Treatment | None, as_of: date, known_at: datetime | None) -> bool:
    return (
        treatment is not None
        and as_of >= treatment.effective_on
        and (known_at is None or known_at >= treatment.recorded_at)
    )


def entry_path(list_id: str, country_code: str) -> str:
    return f"/v1/lists/{list_id}/entries/{country_code}"


def change_document(change: StatusChange, control_list: ControlList, country_code: str) -> dict:
    country = registry().get(country_code)
    path = entry_path(control_list.id, country_code)
    return {
        "id": change.id,
        "list": list_ref(control_list),
        "country": country_summary(country),
        "from_status": change.from_status,
        "status": change.status,
        "restrictions_apply": restrictions_apply(change.status, control_list.effect),
        "effective_on": change.effective_on,
        "expected_effective_on": change.expected_effective_on,
        "recorded_at": change.recorded_at,
        "note": change.note,
        "sources": change.sources,
        "actor": change.actor,
        "request_id": change.request_id,
        "links": {"entry": path, "self": f"{path}/changes/{change.id}"},
    }


def membership_known(control_list: ControlList, as_of: date, known_at: datetime | None) -> bool:
    """Whether absence from this list proves a country is not on it."""
    return (
        control_list.membership_complete
        and (control_list.membership_complete_from is None or as_of >= control_list.membership_complete_from)
        and (known_at is None or known_at >= control_list.recorded_at)
    )


class Changes:
    """Every entry's changes by (country, list), and the treatments that redirect them."""

    def __init__(self, entries: Iterable[Entry], treatments: Iterable[Treatment]):
        self._changes = {(e.country_code, e.list_id): e.changes for e in entries}
        self._treatments = {(t.country_code, t.list_id): t for t in treatments}

    def answer(self, control_list: ControlList, country_code: str, as_of: date, known_at):
        """A country's status on one list; a country treated as another takes its status."""
        treatment = self._treatments.get((country_code, control_list.id))
        if treatment_applies(treatment, as_of, known_at):
            changes = self._changes.get((treatment.treated_as, control_list.id), ())
            result = answer(control_list, treatment.treated_as, changes, as_of, known_at)
            result["treated_as"] = treatment_document(treatment)
            return result
        changes = self._changes.get((country_code, control_list.id), ())
        return answer(control_list, country_code, changes, as_of, known_at)


def answer(
    control_list: ControlList,
    country_code: str,
    changes: Iterable[StatusChange],
    as_of: date,
    known_at: datetime | None,
) -> dict[str, Any]:
    """A country's status on one list, from its own changes, with why the service says so."""
    current = standing(ordered(changes, known_at), as_of)
    base = {
        "list": list_ref(control_list),
        "treated_as": None,
        "links": {"entry": entry_path(control_list.id, country_code)},
    }
    if current is not None:
        change = current.change
        pending = None
        if current.status in PENDING:
            pending = {
                "announced_on": current.announced_on,
                "expected_effective_on": current.expected_effective_on,
            }
        return {
            **base,
            "status": current.status.value,
            "restrictions_apply": restrictions_apply(current.status, control_list.effect),
            "basis": "recorded_change",
            "since": current.since,
            "pending": pending,
            "effective_on": change.effective_on,
            "recorded_at": change.recorded_at,
            "change_id": change.id,
            "note": change.note,
            "sources": change.sources,
        }
    if membership_known(control_list, as_of, known_at):
        return {
            **base,
            "status": Answer.NOT_LISTED.value,
            "restrictions_apply": False,
            "basis": "absent_from_complete_list",
            "since": None,
            "pending": None,
            "effective_on": None,
            "recorded_at": None,
            "change_id": None,
            "note": "Not on this list, whose membership is complete for this date.",
            "sources": control_list.sources,
        }
    if not control_list.membership_complete:
        why = "This list's membership is not known to be complete, so absence proves nothing."
    elif known_at is not None and known_at < control_list.recorded_at:
        why = "The list's full membership was not yet known at known_at."
    else:
        why = (
            "Full membership of this list is only known from "
            f"{control_list.membership_complete_from.isoformat()}; no change is recorded before it."
        )
    return {
        **base,
        "status": Answer.UNKNOWN.value,
        "restrictions_apply": None,
        "basis": "no_data",
        "since": None,
        "pending": None,
        "effective_on": None,
        "recorded_at": None,
        "change_id": None,
        "note": why,
        "sources": [],
    }


def _overall(answers: list[dict]) -> tuple[bool | None, bool]:
    """Restricted anywhere (None when only unknowns stand in the way)? Anything pending?"""
    if any(a["restrictions_apply"] for a in answers):
        restricted = True
    elif any(a["restrictions_apply"] is None and a["list"]["effect"] == Effect.RESTRICTIVE for a in answers):
        restricted = None
    else:
        restricted = False
    pending = any(a["status"] in PENDING for a in answers)
    return restricted, pending


def all_lists(session: Session) -> list[ControlList]:
    return list(session.scalars(select(ControlList).order_by(ControlList.id)))


def get_list(session: Session, list_id: str) -> ControlList:
    control_list = session.get(ControlList, list_id)
    if control_list is None:
        known = [cl.id for cl in all_lists(session)]
        raise UnknownList(f"No list has the id {list_id!r}.", known_lists=known)
    return control_list


def _entries(session: Session, *criteria) -> list[Entry]:
    return list(
        session.scalars(
            select(Entry)
            .where(*criteria)
            .options(selectinload(Entry.changes), selectinload(Entry.control_list))
        )
    )


def _changes_for(session: Session, country_codes: list[str] | None = None) -> Changes:
    """Changes of these countries and of those they are treated as (all when None)."""
    if country_codes is None:
        return Changes(_entries(session), session.scalars(select(Treatment)))
    treatments = list(session.scalars(select(Treatment).where(Treatment.country_code.in_(country_codes))))
    codes = set(country_codes) | {t.treated_as for t in treatments}
    return Changes(_entries(session, Entry.country_code.in_(codes)), treatments)


def country_status(
    session: Session, country: Country, as_of: date, known_at: datetime | None
) -> dict[str, Any]:
    changes = _changes_for(session, [country.alpha_2])
    answers = [changes.answer(cl, country.alpha_2, as_of, known_at) for cl in all_lists(session)]
    restricted, pending = _overall(answers)
    return {
        "country": country_summary(country),
        "as_of": as_of,
        "known_at": known_at,
        "restrictions_apply": restricted,
        "pending": pending,
        "entries": answers,
    }


def countries_overview(session: Session, as_of: date, known_at: datetime | None) -> list[dict[str, Any]]:
    """Every country with a summary of its standing on every list."""
    lists = all_lists(session)
    changes = _changes_for(session)
    overview = []
    for country in registry():
        answers = [changes.answer(cl, country.alpha_2, as_of, known_at) for cl in lists]
        restricted, _pending = _overall(answers)
        overview.append(
            {
                "country": country_summary(country),
                "restrictions_apply": restricted,
                "restricting_lists": [a["list"]["id"] for a in answers if a["restrictions_apply"]],
                "pending": [
                    {"list_id": a["list"]["id"], "status": a["status"], **a["pending"]}
                    for a in answers
                    if a["status"] in PENDING
                ],
                "unknown_lists": [a["list"]["id"] for a in answers if a["status"] == Answer.UNKNOWN],
                "links": {"self": f"/v1/countries/{country.alpha_2}"},
            }
        )
    return overview


def country_history(session: Session, country: Country, known_at: datetime | None) -> list[dict]:
    """Every change across lists, newest first (by effective date, then recording)."""
    history = []
    for entry in _entries(session, Entry.country_code == country.alpha_2):
        history.extend((c, entry.control_list) for c in ordered(entry.changes, known_at))
    history.sort(key=lambda pair: timeline_key(pair[0]), reverse=True)
    return [change_document(c, cl, country.alpha_2) for c, cl in history]


def list_entries(
    session: Session,
    control_list: ControlList,
    as_of: date,
    known_at: datetime | None,
) -> list[dict[str, Any]]:
    """The list's entries in force on `as_of`, by country code.

    A country treated as another on this list (Hong Kong as China) is not an entry
    of its own while the treatment applies.
    """
    treated = {t.country_code for t in control_list.treatments if treatment_applies(t, as_of, known_at)}
    documents = []
    for entry in sorted(_entries(session, Entry.list_id == control_list.id), key=lambda e: e.country_code):
        if entry.country_code in treated:
            continue
        result = answer(control_list, entry.country_code, entry.changes, as_of, known_at)
        if result["basis"] != "recorded_change":
            continue
        country = registry().get(entry.country_code)
        documents.append({"country": country_summary(country), **result})
    return documents


def find_entry(session: Session, control_list: ControlList, country: Country) -> Entry | None:
    return session.scalars(
        select(Entry)
        .where(Entry.list_id == control_list.id, Entry.country_code == country.alpha_2)
        .options(selectinload(Entry.changes))
    ).one_or_none()


def entry_state(session: Session, control_list: ControlList, country: Country, as_of: date) -> dict[str, Any]:
    """An entry's status on `as_of`, with its version (no history)."""
    entry = find_entry(session, control_list, country)
    return {
        "country": country_summary(country),
        **_changes_for(session, [country.alpha_2]).answer(control_list, country.alpha_2, as_of, None),
        "as_of": as_of,
        "version": entry.version if entry else 0,
    }


def entry_detail(
    session: Session,
    control_list: ControlList,
    country: Country,
    as_of: date,
    known_at: datetime | None,
) -> dict[str, Any]:
    """One country on one list: its status and its whole history, newest first."""
    entry = find_entry(session, control_list, country)
    changes = entry.changes if entry else []
    history = sorted(ordered(changes, known_at), key=timeline_key, reverse=True)
    return {
        "country": country_summary(country),
        **_changes_for(session, [country.alpha_2]).answer(control_list, country.alpha_2, as_of, known_at),
        "as_of": as_of,
        "known_at": known_at,
        "version": entry.version if entry else 0,
        "history": [change_document(c, control_list, country.alpha_2) for c in history],
    }


def country_changes(session: Session, country: Country) -> Changes:
    """A country's changes on every list (and those of countries it is treated as), for many dates."""
    return _changes_for(session, [country.alpha_2])
