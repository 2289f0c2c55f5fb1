"""Answers to "what is X's status?": on a date (`as_of`), as known at a moment (`known_at`).

Each function loads what it needs in a few queries and returns plain data
(dicts of Python values) that the API dumps with its schemas.
"""

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Date,
    SQLColumnExpression,
    String,
    and_,
    bindparam,
    false,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased, selectinload

from service.db import OwnConnections
from service.domain.countries import Country, registry
from service.domain.errors import UnknownList
from service.domain.sources import evidence_of, with_kind
from service.domain.statuses import PENDING, Answer, Effect, restrictions_apply
from service.domain.timeline import Standing, first_known, ordered, standing, visible
from service.models import ControlList, Entry, Observation, StatusChange, Treatment


def _country(country_code: str) -> Country:
    """The country an entry is for: entries only hold codes the registry knows."""
    country = registry().get(country_code)
    assert country is not None, f"no country has the code {country_code!r}"
    return country


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


def sources_with_kind(sources: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [with_kind(s) for s in sources or []]


def change_document(change: StatusChange, control_list: ControlList, country_code: str) -> dict[str, Any]:
    country = _country(country_code)
    path = entry_path(control_list.id, country_code)
    return {
        "id": change.id,
        "kind": "change",
        "list": list_ref(control_list),
        "country": country_summary(country),
        "from_status": change.from_status,
        "status": change.status,
        "restrictions_apply": restrictions_apply(change.status, control_list.effect),
        "effective_on": change.effective_on,
        "expected_effective_on": change.expected_effective_on,
        "recorded_at": change.recorded_at,
        "observed_on": None,
        "note": change.note,
        "sources": sources_with_kind(change.sources),
        "evidence": evidence_of(change.sources),
        "confidence": change.confidence,
        "actor": change.actor,
        "request_id": change.request_id,
        "links": {"entry": path, "self": f"{path}/changes/{change.id}"},
    }


def observation_document(
    observation: Observation, control_list: ControlList, country_code: str
) -> dict[str, Any]:
    """An observation, shaped like a change (`kind: observation`) so that histories hold both."""
    country = _country(country_code)
    path = entry_path(control_list.id, country_code)
    return {
        "id": observation.id,
        "kind": "observation",
        "list": list_ref(control_list),
        "country": country_summary(country),
        "from_status": None,
        "status": observation.status,
        "restrictions_apply": restrictions_apply(observation.status, control_list.effect),
        "effective_on": observation.observed_on,
        "expected_effective_on": None,
        "recorded_at": observation.recorded_at,
        "observed_on": observation.observed_on,
        "note": observation.note,
        "sources": sources_with_kind(observation.sources),
        "evidence": evidence_of(observation.sources),
        "confidence": observation.confidence,
        "actor": observation.actor,
        "request_id": observation.request_id,
        "links": {"entry": path, "self": f"{path}/observations/{observation.id}"},
    }


def history_key(item: StatusChange | Observation) -> tuple[bool, date, int, int]:
    """Timeline order for changes and observations together (an observation before a change on its day)."""
    if isinstance(item, Observation):
        return (True, item.observed_on, 0, item.id)
    return (item.effective_on is not None, item.effective_on or date.min, 1, item.id)


def history_documents(
    items: Iterable[StatusChange | Observation], control_list: ControlList, country_code: str
) -> list[dict[str, Any]]:
    return [
        observation_document(i, control_list, country_code)
        if isinstance(i, Observation)
        else change_document(i, control_list, country_code)
        for i in items
    ]


def membership_known(control_list: ControlList, as_of: date, known_at: datetime | None) -> bool:
    """Whether absence from this list proves a country is not on it."""
    return (
        control_list.membership_complete
        and (control_list.membership_complete_from is None or as_of >= control_list.membership_complete_from)
        and (known_at is None or known_at >= control_list.recorded_at)
    )


class Changes:
    """Every entry's changes by (country, list), and the treatments that redirect them."""

    def __init__(self, entries: Iterable["Entry | _EntryAt"], treatments: Iterable[Treatment]):
        self._entries = {(e.country_code, e.list_id): e for e in entries}
        self._treatments = {(t.country_code, t.list_id): t for t in treatments}

    def _decide(
        self, control_list: ControlList, country_code: str, as_of: date, known_at: datetime | None
    ) -> "Decision":
        entry = self._entries.get((country_code, control_list.id))
        if entry is None:
            return decide_unrecorded(control_list, as_of, known_at)
        return decide(control_list, entry.changes, as_of, known_at, entry.observations)

    def decision(
        self, control_list: ControlList, country_code: str, as_of: date, known_at: datetime | None
    ) -> tuple[Treatment | None, str, "Decision"]:
        """The treatment that applies (None if none does), the country answered for (the one it
        is treated as, or itself) and what its answer rests on."""
        treatment = self._treatments.get((country_code, control_list.id))
        if treatment is not None and treatment_applies(treatment, as_of, known_at):
            return (
                treatment,
                treatment.treated_as,
                self._decide(control_list, treatment.treated_as, as_of, known_at),
            )
        return None, country_code, self._decide(control_list, country_code, as_of, known_at)

    def answer(
        self, control_list: ControlList, country_code: str, as_of: date, known_at: datetime | None
    ) -> dict[str, Any]:
        """A country's status on one list; a country treated as another takes its status."""
        return decided_answer(control_list, *self.decision(control_list, country_code, as_of, known_at))


def decided_answer(
    control_list: ControlList, treatment: Treatment | None, answered_for: str, decision: "Decision"
) -> dict[str, Any]:
    """The answer of `Changes.decision`: the decision's document, with the treatment that led to it."""
    result = answer_document(control_list, answered_for, decision)
    if treatment is not None:
        result["treated_as"] = treatment_document(treatment)
    return result


UNKNOWN_NOTES = {
    "before_first_observation": "Known only from {observed_since}, the earliest evidence of this entry; "
    "when its status began is not recorded, so earlier dates are unknown.",
    "unrecorded_change": "The evidence before and after this date disagrees, and no change between "
    "them is recorded.",
    "membership_not_complete": "This list's membership is not known to be complete, "
    "so absence proves nothing.",
    "not_yet_known": "The list's full membership was not yet known at known_at.",
    "before_membership_complete": "Full membership of this list is only known from {complete_from}; "
    "no change is recorded before it.",
}


def _unknown(
    base: dict[str, Any], reason: str, observed_since: date | None = None, complete_from: date | None = None
) -> dict[str, Any]:
    note = UNKNOWN_NOTES[reason].format(
        observed_since=observed_since.isoformat() if observed_since else None,
        complete_from=complete_from.isoformat() if complete_from else None,
    )
    return {
        **base,
        "status": Answer.UNKNOWN.value,
        "restrictions_apply": None,
        "basis": "no_data",
        "reason": reason,
        "since": None,
        "observed_since": observed_since,
        "pending": None,
        "effective_on": None,
        "recorded_at": None,
        "change_id": None,
        "note": note,
        "sources": [],
        "evidence": None,
        "confidence": None,
    }


@dataclass(frozen=True, slots=True)
class Decision:
    """What a country's answer on one list rests on (`decide`), before its document is built.

    `key` names the document: two decisions with the same key (for the same list and
    country, at the same data version) have the same document, whatever the dates asked
    for, so a rendered answer can be reused for every date and moment that leads to it.
    """

    key: tuple[Any, ...]
    standing: Standing[Any] | None = None
    reason: str | None = None
    observed_since: date | None = None
    complete_from: date | None = None


def decide(
    control_list: ControlList,
    changes: Iterable[StatusChange],
    as_of: date,
    known_at: datetime | None,
    observations: Iterable[Observation] = (),
) -> Decision:
    """Which answer a list gives on `as_of`, as known at `known_at`: cheap (no document built)."""
    timeline = ordered(changes, known_at)
    shown = visible(observations, known_at)
    current = standing(timeline, as_of, shown) if timeline or shown else None
    if current is not None and current.basis == "no_data":
        assert current.reason is not None  # a no_data standing always says why
        return Decision(
            ("unknown", current.reason, current.observed_since),
            reason=current.reason,
            observed_since=current.observed_since,
        )
    if current is not None and current.basis == "recorded_change":
        assert current.change is not None  # a recorded_change standing always has its change
        key = (
            "change",
            current.change.id,
            current.since,
            current.announced_on,
            current.expected_effective_on,
        )
        return Decision(key, standing=current)
    if current is not None:  # from observations, in a stretch with no dated change
        points = tuple((point.kind, point.origin.id) for point in current.points)
        return Decision(("observation", current.status, current.observed_since, points), standing=current)
    if membership_known(control_list, as_of, known_at):
        return ABSENT
    earliest = first_known(timeline, shown) if timeline or shown else None
    if earliest is not None and earliest > as_of:
        return Decision(
            ("unknown", "before_first_observation", earliest),
            reason="before_first_observation",
            observed_since=earliest,
        )
    return _unrecorded(control_list, known_at)


ABSENT = Decision(("absent",))
_UNRECORDED = {
    reason: Decision(("unknown", reason), reason=reason)
    for reason in ("membership_not_complete", "not_yet_known")
}


def decide_unrecorded(control_list: ControlList, as_of: date, known_at: datetime | None) -> Decision:
    """`decide` for a country with no entry on the list (most lists, for most countries): what
    the list's membership says, with no timeline to sort."""
    if membership_known(control_list, as_of, known_at):
        return ABSENT
    return _unrecorded(control_list, known_at)


def _unrecorded(control_list: ControlList, known_at: datetime | None) -> Decision:
    """Why nothing on record answers, when the membership does not either."""
    if not control_list.membership_complete:
        return _UNRECORDED["membership_not_complete"]
    if known_at is not None and known_at < control_list.recorded_at:
        return _UNRECORDED["not_yet_known"]
    return Decision(
        ("unknown", "before_membership_complete", control_list.membership_complete_from),
        reason="before_membership_complete",
        complete_from=control_list.membership_complete_from,
    )


def answer_document(control_list: ControlList, country_code: str, decision: Decision) -> dict[str, Any]:
    """The answer `decision` stands for: status, since when, pending details, sources."""
    base: dict[str, Any] = {
        "list": list_ref(control_list),
        "treated_as": None,
        "links": {"entry": entry_path(control_list.id, country_code)},
    }
    current = decision.standing
    if decision.reason is not None:
        return _unknown(base, decision.reason, decision.observed_since, decision.complete_from)
    pending: dict[str, Any] | None
    if current is not None and current.basis == "recorded_change":
        change = current.change
        assert change is not None  # a recorded_change standing always has its change
        pending = None
        if current.status in PENDING:
            pending = {
                "announced_on": current.announced_on,
                "expected_effective_on": current.expected_effective_on,
            }
        return {
            **base,
            "status": current.status,
            "restrictions_apply": restrictions_apply(current.status, control_list.effect),
            "basis": "recorded_change",
            "reason": None,
            "since": current.since,
            "observed_since": None,
            "pending": pending,
            "effective_on": change.effective_on,
            "recorded_at": change.recorded_at,
            "change_id": change.id,
            "note": change.note,
            "sources": sources_with_kind(change.sources),
            "evidence": evidence_of(change.sources),
            "confidence": change.confidence,
        }
    if current is not None:  # from observations, in a stretch with no dated change
        latest = current.points[0].origin
        sources: dict[str, dict[str, Any]] = {}
        for point in current.points:
            for source in point.origin.sources:
                sources.setdefault(source["url"], with_kind(source))
        pending = None
        if current.status in PENDING:
            pending = {"announced_on": None, "expected_effective_on": None}
        return {
            **base,
            "status": current.status,
            "restrictions_apply": restrictions_apply(current.status, control_list.effect),
            "basis": "observation",
            "reason": None,
            "since": None,
            "observed_since": current.observed_since,
            "pending": pending,
            "effective_on": None,
            "recorded_at": latest.recorded_at,
            "change_id": None,
            "note": latest.note,
            "sources": list(sources.values()),
            "evidence": evidence_of(sources.values()),
            "confidence": latest.confidence,
        }
    return {
        **base,
        "status": Answer.NOT_LISTED.value,
        "restrictions_apply": False,
        "basis": "absent_from_complete_list",
        "reason": None,
        "since": None,
        "observed_since": None,
        "pending": None,
        "effective_on": None,
        "recorded_at": None,
        "change_id": None,
        "note": "Not on this list, whose membership is complete for this date.",
        "sources": sources_with_kind(control_list.sources),
        "evidence": evidence_of(control_list.sources),
        "confidence": None,
    }


def answer(
    control_list: ControlList,
    country_code: str,
    changes: Iterable[StatusChange],
    as_of: date,
    known_at: datetime | None,
    observations: Iterable[Observation] = (),
) -> dict[str, Any]:
    """A country's status on one list, from its own changes and observations, with why the service says so."""
    decision = decide(control_list, changes, as_of, known_at, observations)
    return answer_document(control_list, country_code, decision)


def _overall(answers: list[dict[str, Any]]) -> tuple[bool | None, bool]:
    """Restricted anywhere (None when only unknowns stand in the way)? Anything pending?"""
    restricted: bool | None
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


def by_jurisdiction(lists: list[ControlList]) -> list[ControlList]:
    """Lists grouped by the jurisdiction that keeps them, then by id (how a country's entries are ordered)."""
    return sorted(lists, key=lambda cl: (cl.jurisdiction, cl.id))


def get_list(session: Session, list_id: str) -> ControlList:
    control_list = session.get(ControlList, list_id)
    if control_list is None:
        known = [cl.id for cl in all_lists(session)]
        raise UnknownList(f"No list has the id {list_id!r}.", known_lists=known)
    return control_list


def _entries(session: Session, *criteria: ColumnElement[bool]) -> list[Entry]:
    return list(
        session.scalars(
            select(Entry)
            .where(*criteria)
            .options(
                selectinload(Entry.changes),
                selectinload(Entry.observations),
                selectinload(Entry.control_list),
            )
        )
    )


def _changes_for(session: Session, country_codes: list[str] | None = None) -> Changes:
    """Changes of these countries and of those they are treated as (all when None)."""
    if country_codes is None:
        return Changes(_entries(session), session.scalars(select(Treatment)))
    treatments = list(session.scalars(select(Treatment).where(Treatment.country_code.in_(country_codes))))
    codes = set(country_codes) | {t.treated_as for t in treatments}
    return Changes(_entries(session, Entry.country_code.in_(codes)), treatments)


@dataclass(slots=True)
class _EntryAt:
    """An entry reduced to the changes and observations that decide its answer on one date, as
    known at one moment: `answer` gives the same for it as for the whole entry (see `_entries_at`).
    They are rows of their tables' columns (not ORM objects): a lookup only reads them."""

    list_id: str
    country_code: str
    changes: list[Any] = field(default_factory=list)
    observations: list[Any] = field(default_factory=list)


def _visible(model: Any, known: bool) -> list[ColumnElement[bool]]:
    """Recorded by `known_at` (a bound parameter), when the lookup asks for it."""
    return [model.recorded_at <= bindparam("known_at")] if known else []


# What a lookup reads of a change or an observation (one row shape for both: the columns one of them
# lacks are NULL), after which part of the read it comes from (`_lookup_statement`).
CURRENT, RUN_START, STRETCH_CHANGE, STRETCH_OBSERVATION = range(4)


def _row(model: Any, role: int, entry: tuple[Any, Any, Any] | None = None) -> list[Any]:
    """The columns of one part of the lookup's read, in the one order all parts share; `entry`:
    the entry's (id, list_id, country_code), which only the CURRENT part reads."""
    change = role != STRETCH_OBSERVATION
    no_date, no_text = sql_cast(null(), Date), sql_cast(null(), String)
    key, list_id, country = entry or (model.entry_id, no_text, no_text)
    return [
        literal(role).label("role"),
        key.label("entry_key"),
        list_id.label("entry_list"),
        country.label("entry_country"),
        model.id.label("id"),
        model.entry_id.label("entry_id"),
        model.status.label("status"),
        (model.from_status if change else no_text).label("from_status"),
        (model.effective_on if change else no_date).label("effective_on"),
        (model.expected_effective_on if change else no_date).label("expected_effective_on"),
        (no_date if change else model.observed_on).label("observed_on"),
        model.recorded_at.label("recorded_at"),
        model.note.label("note"),
        model.sources.label("sources"),
        model.confidence.label("confidence"),
    ]


@functools.cache
def _lookup_statement(known: bool, countries: int) -> CompoundSelect[Any]:
    """The lookup's one read (with and without `known_at`, for a number of countries), built once:
    building it per request would cost more than running it. Parameters: `as_of`, `known_at`,
    `country_0`... (plain parameters, not an expanding IN, which SQLAlchemy renders again at
    every execution).

    Every entry of the countries (`CURRENT`, with the change in force if there is one), and where a
    dated change is in force, the first change of its run (`RUN_START`); where none is, the stretch
    before the first dated change (`STRETCH_CHANGE`, `STRETCH_OBSERVATION`)."""
    in_force = aliased(StatusChange)
    current_id = (
        select(in_force.id)
        .where(
            in_force.entry_id == Entry.id,
            in_force.effective_on <= bindparam("as_of"),
            *_visible(in_force, known),
        )
        .order_by(in_force.effective_on.desc(), in_force.id.desc())
        .limit(1)
        .correlate(Entry)
        .scalar_subquery()
    )
    of_countries = Entry.country_code.in_([bindparam(f"country_{n}") for n in range(countries)])
    # Each entry with the id of its change in force (NULL: none), found once: every part below
    # reads it (as a subquery each, the search ran four times an entry, and with `known_at` it
    # walks back past the changes recorded later). A CTE read more than once is materialized
    # (PostgreSQL 12+, SQLite 3.35+); joined on a plain column, the change is one primary-key
    # lookup, not a hash join over every change.
    found = (
        select(
            Entry.id.label("entry_id"),
            Entry.list_id.label("list_id"),
            Entry.country_code.label("country_code"),
            current_id.label("change_id"),
        )
        .where(of_countries)
        .cte("found")
    )
    current = (
        select(*_row(StatusChange, CURRENT, (found.c.entry_id, found.c.list_id, found.c.country_code)))
        .select_from(found)
        .outerjoin(StatusChange, StatusChange.id == found.c.change_id)
    )
    # The first change of the run in force: right after the latest earlier change (in timeline
    # order) with another status (the "breaker"), else the entry's first dated change.
    cur = aliased(StatusChange)
    other = aliased(StatusChange)
    breaker = aliased(StatusChange)
    first = aliased(StatusChange)
    breaker_id = (
        select(other.id)
        .where(
            other.entry_id == cur.entry_id,
            other.effective_on <= cur.effective_on,
            or_(other.effective_on < cur.effective_on, other.id < cur.id),
            other.status != cur.status,
            *_visible(other, known),
        )
        .order_by(other.effective_on.desc(), other.id.desc())
        .limit(1)
        .correlate(cur)
        .scalar_subquery()
    )
    first_id = (
        select(first.id)
        .where(
            first.entry_id == cur.entry_id,
            first.effective_on <= cur.effective_on,
            first.effective_on >= func.coalesce(breaker.effective_on, literal(date.min, Date)),
            or_(breaker.id.is_(None), first.effective_on > breaker.effective_on, first.id > breaker.id),
            *_visible(first, known),
        )
        .order_by(first.effective_on, first.id)
        .limit(1)
        .correlate(cur, breaker)
        .scalar_subquery()
    )
    run_start = aliased(StatusChange)
    runs = (
        select(*_row(run_start, RUN_START))
        .select_from(cur)
        .outerjoin(breaker, breaker.id == breaker_id)
        .join(run_start, run_start.id == first_id)
        .where(cur.id.in_(select(found.c.change_id)), run_start.id != cur.id)
    )

    # Before the first dated change: that change (and any on its day), the undated ones, and the
    # observations before it (all of them when no dated change is on record).
    def first_day(model: Any) -> Any:
        earliest = aliased(StatusChange)
        return (
            select(func.min(earliest.effective_on))
            .where(earliest.entry_id == model.entry_id, *_visible(earliest, known))
            .scalar_subquery()
        )

    nothing_in_force = select(found.c.entry_id).where(found.c.change_id.is_(None))
    stretch_changes = select(*_row(StatusChange, STRETCH_CHANGE)).where(
        StatusChange.entry_id.in_(nothing_in_force),
        or_(StatusChange.effective_on.is_(None), StatusChange.effective_on == first_day(StatusChange)),
        *_visible(StatusChange, known),
    )
    stretch_observations = select(*_row(Observation, STRETCH_OBSERVATION)).where(
        Observation.entry_id.in_(nothing_in_force),
        Observation.observed_on < func.coalesce(first_day(Observation), literal(date.max, Date)),
        *_visible(Observation, known),
    )
    return union_all(current, runs, stretch_changes, stretch_observations)


def _entries_at(
    session: Session,
    country_codes: Iterable[str],
    as_of: date,
    known_at: datetime | None,
    reads: OwnConnections | None = None,
) -> list[_EntryAt]:
    """The entries of these countries, each with only what decides its status on `as_of` as known
    at `known_at`, found by the (entry_id, effective_on, id) index whatever the history's depth.

    Where a dated change is in force: that change and the first of its run (`since`). Before
    the first dated change: that change (its `from_status` is evidence), the undated changes
    and the observations before it, as `standing` reads them. Nothing else can change the
    answer, so nothing else is read (nor its sources decoded). One statement, rows not ORM
    objects: a lookup reads them and writes nothing back.

    `reads`: run it there (a read-only request's own connections, `OwnConnections`: no pool
    checkout, no session, the statement compiled once) rather than on `session`, which a write
    must use to see what it has not committed yet.
    """
    codes = sorted(country_codes)
    params = {"as_of": as_of, "known_at": known_at, **{f"country_{n}": code for n, code in enumerate(codes)}}
    known = known_at is not None
    rows: Sequence[Any]
    if reads is None:
        rows = session.connection().execute(_lookup_statement(known, len(codes)), params).all()
    else:
        rows = reads.rows(("lookup", known, len(codes)), lambda: _lookup_statement(known, len(codes)), params)
    entries = {
        row.entry_key: _EntryAt(row.entry_list, row.entry_country) for row in rows if row.role == CURRENT
    }
    for row in rows:
        if row.role == STRETCH_OBSERVATION:
            entries[row.entry_key].observations.append(row)
        elif row.id is not None:  # an entry with no change in force has a CURRENT row without one
            entries[row.entry_key].changes.append(row)
    return list(entries.values())


def changes_at(
    session: Session,
    country_codes: list[str],
    as_of: date,
    known_at: datetime | None,
    treatments: Iterable[Treatment] | None = None,
    reads: OwnConnections | None = None,
) -> Changes:
    """Like `_changes_for`, but holding only what answers for `as_of` and `known_at`: ask it for no
    other. `treatments`: every treatment (read from the database when None); `reads`: where to
    read the changes, when not on `session` (see `_entries_at`)."""
    if treatments is None:
        found = list(session.scalars(select(Treatment).where(Treatment.country_code.in_(country_codes))))
    else:
        found = [t for t in treatments if t.country_code in country_codes]
    codes = set(country_codes) | {t.treated_as for t in found}
    return Changes(_entries_at(session, codes, as_of, known_at, reads), found)


def find_list(session: Session, ref: str) -> ControlList:
    """A list by its id, or by its code (any case) where only one list has that code."""
    found = session.get(ControlList, ref)
    if found is not None:
        return found
    lists = all_lists(session)
    matches = [cl for cl in lists if cl.code.casefold() == ref.casefold()]
    if len(matches) == 1:
        return matches[0]
    known = [cl.id for cl in lists]
    if matches:
        ids = ", ".join(cl.id for cl in matches)
        raise UnknownList(
            f"Several lists have the code {ref!r} ({ids}): name one by its id.", known_lists=known
        )
    raise UnknownList(f"No list has the id or code {ref!r}.", known_lists=known)


def country_status(
    session: Session,
    country: Country,
    as_of: date,
    known_at: datetime | None,
    list_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """A country's answer on every list (or on `list_ids` only: the summaries then speak for those)."""
    changes = changes_at(session, [country.alpha_2], as_of, known_at)
    lists = by_jurisdiction(all_lists(session))
    if list_ids is not None:
        lists = [cl for cl in lists if cl.id in list_ids]
    answers = [changes.answer(cl, country.alpha_2, as_of, known_at) for cl in lists]
    return status_summary(country, as_of, known_at, answers)


def status_summary(
    country: Country, as_of: date, known_at: datetime | None, answers: list[dict[str, Any]]
) -> dict[str, Any]:
    """The country's answer from its answers on each list (each needs at least its `list`'s id and
    effect, `status` and `restrictions_apply`): restricted anywhere? by which lists? pending?"""
    restricted, pending = _overall(answers)
    return {
        "country": country_summary(country),
        "as_of": as_of,
        "known_at": known_at,
        "restrictions_apply": restricted,
        "restricting_lists": [a["list"]["id"] for a in answers if a["restrictions_apply"]],
        "unknown_restrictive_lists": [
            a["list"]["id"]
            for a in answers
            if a["restrictions_apply"] is None and a["list"]["effect"] == Effect.RESTRICTIVE
        ],
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


def full_country_history(
    session: Session, country: Country, known_at: datetime | None
) -> list[dict[str, Any]]:
    """Every change and observation across lists, newest first: the pages' timeline, which
    draws them all (the API pages them with `country_history`)."""
    history: list[tuple[StatusChange | Observation, ControlList]] = []
    for entry in _entries(session, Entry.country_code == country.alpha_2):
        history.extend((c, entry.control_list) for c in ordered(entry.changes, known_at))
        history.extend((o, entry.control_list) for o in visible(entry.observations, known_at))
    history.sort(key=lambda pair: history_key(pair[0]), reverse=True)
    return [history_documents([item], cl, country.alpha_2)[0] for item, cl in history]


# A history cursor: (date or date.min, 0 for an observation / 1 for a change, id) of the last item.
HistoryCursor = tuple[date, int, int]


def _after_cursor(
    day: SQLColumnExpression[date], rank: int, row_id: SQLColumnExpression[int], cursor: HistoryCursor | None
) -> list[ColumnElement[bool]]:
    """SQL criteria: a row of one table (whose rank is `rank`) comes after `cursor` in
    newest-first order, i.e. (day, rank, id) < cursor, compared left to right."""
    if cursor is None:
        return []
    c_day, c_rank, c_id = cursor
    same_day: ColumnElement[bool]
    if rank < c_rank:
        same_day = day == c_day
    elif rank == c_rank:
        same_day = and_(day == c_day, row_id < c_id)
    else:
        same_day = false()
    return [or_(day < c_day, same_day)]


def country_history(
    session: Session,
    country: Country,
    known_at: datetime | None,
    *,
    limit: int,
    cursor: HistoryCursor | None = None,
) -> tuple[list[dict[str, Any]], HistoryCursor | None]:
    """A page of every change and observation across lists, newest first (by date, observations
    before changes on their day, then recording), and the cursor of the next page."""
    return _history_page(session, country.alpha_2, [], known_at, limit=limit, cursor=cursor)


def _history_page(
    session: Session,
    country_code: str,
    criteria: list[ColumnElement[bool]],
    known_at: datetime | None,
    *,
    limit: int,
    cursor: HistoryCursor | None,
) -> tuple[list[dict[str, Any]], HistoryCursor | None]:
    """A page of the changes and observations of a country's entries (those matching `criteria`).

    Keyset paging in SQL: each table gives at most limit + 1 rows after the cursor, and the
    two are merged; nothing before the page is read.
    """
    no_date = literal(date.min, Date)
    change_day = func.coalesce(StatusChange.effective_on, no_date)
    changes = (
        select(StatusChange, ControlList)
        .join(Entry, Entry.id == StatusChange.entry_id)
        .join(ControlList, ControlList.id == Entry.list_id)
        .where(
            Entry.country_code == country_code,
            *criteria,
            *_after_cursor(change_day, 1, StatusChange.id, cursor),
        )
        .order_by(change_day.desc(), StatusChange.id.desc())
        .limit(limit + 1)
    )
    observations = (
        select(Observation, ControlList)
        .join(Entry, Entry.id == Observation.entry_id)
        .join(ControlList, ControlList.id == Entry.list_id)
        .where(
            Entry.country_code == country_code,
            *criteria,
            *_after_cursor(Observation.observed_on, 0, Observation.id, cursor),
        )
        .order_by(Observation.observed_on.desc(), Observation.id.desc())
        .limit(limit + 1)
    )
    if known_at is not None:
        changes = changes.where(StatusChange.recorded_at <= known_at)
        observations = observations.where(Observation.recorded_at <= known_at)
    rows = list(session.execute(changes)) + list(session.execute(observations))
    rows.sort(key=lambda row: history_key(row[0]), reverse=True)
    page, more = rows[:limit], len(rows) > limit
    documents = [history_documents([item], control_list, country_code)[0] for item, control_list in page]
    if not more or not page:
        return documents, None
    last = history_key(page[-1][0])
    return documents, (last[1], last[2], last[3])


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
    documents: list[dict[str, Any]] = []
    for entry in sorted(_entries(session, Entry.list_id == control_list.id), key=lambda e: e.country_code):
        if entry.country_code in treated:
            continue
        result = answer(control_list, entry.country_code, entry.changes, as_of, known_at, entry.observations)
        if result["basis"] not in ("recorded_change", "observation") or result["status"] == Answer.NOT_LISTED:
            continue
        country = _country(entry.country_code)
        documents.append({"country": country_summary(country), **result})
    return documents


def find_entry(session: Session, control_list: ControlList, country: Country) -> Entry | None:
    return session.scalars(
        select(Entry).where(Entry.list_id == control_list.id, Entry.country_code == country.alpha_2)
    ).one_or_none()


def entry_state(session: Session, control_list: ControlList, country: Country, as_of: date) -> dict[str, Any]:
    """An entry's status on `as_of`, with its version (no history)."""
    entry = find_entry(session, control_list, country)
    return {
        "country": country_summary(country),
        **changes_at(session, [country.alpha_2], as_of, None).answer(
            control_list, country.alpha_2, as_of, None
        ),
        "as_of": as_of,
        "version": entry.version if entry else 0,
    }


def _entry_history(
    session: Session,
    entry: Entry,
    control_list: ControlList,
    known_at: datetime | None,
    *,
    limit: int,
    cursor: HistoryCursor | None,
) -> tuple[list[dict[str, Any]], HistoryCursor | None]:
    """A page of one entry's history, in `country_history`'s order and cursor, read backwards
    along the (entry_id, effective_on, id) index: dated changes, then undated ones (which sort
    as the earliest), so a page costs the same however long the history."""
    visible = _visible(StatusChange, known_at is not None)
    dated = (
        select(StatusChange)
        .where(
            StatusChange.entry_id == entry.id,
            StatusChange.effective_on.is_not(None),
            *visible,
            # Not NULL here: the column itself, so that the index serves the range and the order.
            *_after_cursor(
                cast("SQLColumnExpression[date]", StatusChange.effective_on), 1, StatusChange.id, cursor
            ),
        )
        .order_by(StatusChange.effective_on.desc(), StatusChange.id.desc())
        .limit(limit + 1)
    )
    undated = (
        select(StatusChange)
        .where(
            StatusChange.entry_id == entry.id,
            StatusChange.effective_on.is_(None),
            *visible,
            *_after_cursor(literal(date.min, Date), 1, StatusChange.id, cursor),
        )
        .order_by(StatusChange.id.desc())
        .limit(limit + 1)
    )
    observations = (
        select(Observation)
        .where(
            Observation.entry_id == entry.id,
            *_visible(Observation, known_at is not None),
            *_after_cursor(Observation.observed_on, 0, Observation.id, cursor),
        )
        .order_by(Observation.observed_on.desc(), Observation.id.desc())
        .limit(limit + 1)
    )
    params = {"known_at": known_at}
    items: list[StatusChange | Observation] = [*session.scalars(dated, params)]
    if len(items) <= limit:  # undated changes come after every dated one
        items += session.scalars(undated, params)
    items += session.scalars(observations, params)
    items.sort(key=history_key, reverse=True)
    page, more = items[:limit], len(items) > limit
    documents = history_documents(page, control_list, entry.country_code)
    if not more or not page:
        return documents, None
    key = history_key(page[-1])
    return documents, (key[1], key[2], key[3])


def entry_detail(
    session: Session,
    control_list: ControlList,
    country: Country,
    as_of: date,
    known_at: datetime | None,
    *,
    limit: int,
    cursor: HistoryCursor | None = None,
) -> tuple[dict[str, Any], HistoryCursor | None]:
    """One country on one list: its status, and a page of its history (changes and observations),
    newest first; and the cursor of the next page."""
    entry = find_entry(session, control_list, country)
    history: list[dict[str, Any]] = []
    last: HistoryCursor | None = None
    if entry is not None:
        history, last = _entry_history(session, entry, control_list, known_at, limit=limit, cursor=cursor)
    document = {
        "country": country_summary(country),
        **changes_at(session, [country.alpha_2], as_of, known_at).answer(
            control_list, country.alpha_2, as_of, known_at
        ),
        "as_of": as_of,
        "known_at": known_at,
        "version": entry.version if entry else 0,
        "history": history,
    }
    return document, last


def country_changes(session: Session, country: Country) -> Changes:
    """A country's changes on every list (and those of countries it is treated as), for many dates."""
    return _changes_for(session, [country.alpha_2])
