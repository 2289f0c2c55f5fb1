"""Recording status changes: the only way an entry's status moves."""

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Date, Select, Table, and_, bindparam, func, or_, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.domain import lookups
from service.domain.audit import Actor
from service.domain.countries import Country
from service.domain.errors import (
    ConcurrentUpdate,
    IllegalTransition,
    InvalidInput,
    TreatedAsAnother,
    VersionMismatch,
)
from service.domain.events import emit, touch_data
from service.domain.jsonable import jsonable
from service.domain.outbox import fan_out
from service.domain.schedule import schedule_notices
from service.domain.sources import with_kind
from service.domain.statuses import PENDING, Answer, Status
from service.domain.timeline import Placement, ordered, place, visible
from service.models import ControlList, Entry, Event, Observation, StatusChange, Treatment
from service.vocabulary import EventType


@dataclass
class ChangeRequest:
    status: Status
    effective_on: date | None
    sources: list[dict[str, Any]]
    expected_effective_on: date | None = None
    note: str | None = None
    confidence: str | None = None


@dataclass
class ObservationRequest:
    status: Answer
    observed_on: date
    sources: list[dict[str, Any]]
    note: str | None = None
    confidence: str | None = None


@dataclass
class Recorded:
    change: StatusChange
    entry: Entry
    event: Event
    treatment: Treatment | None = None  # the country's treatment on the list, if any
    # The neighbourhood (with `run`) the change was placed in, before it was added.
    neighbours: list[StatusChange] = field(default_factory=list)

    def neighbourhood_after(self, on: date) -> list[StatusChange] | None:
        """The neighbourhood of `on` (with `run`) now that the change is recorded, without a query,
        where it follows from the one the change was placed in: the change is dated, in force
        on `on` and last in the timeline (nothing dated after it), so it is in force, and the
        start of its run is the change itself or the run before it (both read at placement).
        None where it does not follow: ask `neighbourhood`."""
        effective_on = self.change.effective_on
        if effective_on is None or effective_on > on:
            return None
        if any(c.effective_on is not None and c.effective_on > effective_on for c in self.neighbours):
            return None
        return ordered([*self.neighbours, self.change])


def _validate(request: ChangeRequest, timeline: list[StatusChange], recorded_at: datetime) -> None:
    errors: dict[str, list[str]] = {}
    if not request.sources:
        errors["sources"] = ["At least one source is required."]
    if request.effective_on is None and timeline:
        errors["effective_on"] = [
            "Required: only an entry's first change may be in force since an unrecorded date."
        ]
    if request.expected_effective_on is not None:
        if request.status not in PENDING:
            errors["expected_effective_on"] = [
                "Only a pending status (pending_removal, pending_addition) has an expected effective date."
            ]
        elif request.effective_on and request.expected_effective_on < request.effective_on:
            errors["expected_effective_on"] = ["Must not be before effective_on (the announcement date)."]
    if (
        request.status in PENDING
        and request.effective_on is not None
        and request.effective_on > recorded_at.date()
    ):
        errors["effective_on"] = [
            "For a pending status, effective_on is the announcement date, which cannot be in the future."
        ]
    if errors:
        raise InvalidInput("Invalid " + ", ".join(f"'{name}'" for name in errors) + ".", errors)


def _refuse_if_treated(
    session: Session, control_list: ControlList, country_code: str, effective_on: date | None
) -> Treatment | None:
    """The country's treatment on this list (None if it has none); TreatedAsAnother if it
    takes another's status on `effective_on`."""
    treatment = session.scalars(
        _TREATMENT, {"list_id": control_list.id, "country_code": country_code}
    ).one_or_none()
    if treatment is not None and (effective_on is None or effective_on >= treatment.effective_on):
        raise TreatedAsAnother(
            f"On {control_list.id} {country_code} takes {treatment.treated_as}'s status since "
            f"{treatment.effective_on.isoformat()}; record the change on {treatment.treated_as}.",
            treated_as=treatment.treated_as,
        )
    return treatment


# The write path's statements, built once: a statement memoises its cache key, so executing
# it again with new parameters skips building and hashing it (a good part of a write's CPU).
_TREATMENT = select(Treatment).where(
    Treatment.list_id == bindparam("list_id"), Treatment.country_code == bindparam("country_code")
)
# A Core statement on the session's connection (the ORM's bulk-update path cost about six
# times the statement): the caller keeps the entry object in step, and moves the data version.
_ENTRIES = cast(Table, Entry.__table__)
_BUMP_VERSION = (
    update(_ENTRIES)
    .where(_ENTRIES.c.id == bindparam("entry_id"), _ENTRIES.c.version == bindparam("read_version"))
    .values(version=_ENTRIES.c.version + 1)
)
_LOCK_ENTRY = (
    select(Entry)
    .where(Entry.list_id == bindparam("list_id"), Entry.country_code == bindparam("country_code"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def bump_version(session: Session, entry: Entry) -> None:
    """Move the entry to its next version, only if nobody moved it since we read it."""
    bumped = session.connection().execute(
        _BUMP_VERSION, {"entry_id": entry.id, "read_version": entry.version}
    )
    if bumped.rowcount != 1:
        raise ConcurrentUpdate("Another change to this entry was recorded at the same time; retry.")
    set_committed_value(entry, "version", entry.version + 1)
    touch_data(session)  # an entry's version is served (its ETag): not through the ORM, so said here


def _lock_entry(
    session: Session,
    control_list: ControlList,
    country_code: str,
    recorded_at: datetime,
    expected_versions: set[int] | None,
    must_exist: bool,
) -> Entry:
    """The entry, locked for this write (created if new), at one of the expected versions."""
    # FOR UPDATE serialises writers of one entry on PostgreSQL (SQLite has one writer
    # anyway); the conditional version bump is what guarantees it everywhere.
    # Only the entry row: its timeline is read a neighbour at a time (see `neighbourhood`).
    entry = session.scalars(
        _LOCK_ENTRY, {"list_id": control_list.id, "country_code": country_code}
    ).one_or_none()
    if entry is None and must_exist:
        raise VersionMismatch("If-Match: * but the entry does not exist yet.", current_version=0)
    if entry is None:
        entry = Entry(list_id=control_list.id, country_code=country_code, version=0, created_at=recorded_at)
        session.add(entry)
        session.flush()
    if expected_versions is not None and entry.version not in expected_versions:
        expected = " or ".join(str(v) for v in sorted(expected_versions)) or "a version a strong ETag names"
        raise VersionMismatch(
            f"The entry is at version {entry.version}, not {expected}: it changed since you read it.",
            current_version=entry.version,
        )
    return entry


def _neighbourhood_statement(*, run: bool) -> Select[StatusChange]:
    """The changes `neighbourhood` reads, for the `entry_id` and `on` bound at execution. Built
    once: a statement object memoises its cache key, so executing it again costs no rebuild."""
    sc = StatusChange
    mine = sc.entry_id == bindparam("entry_id")
    on = bindparam("on", type_=Date)
    backwards = (sc.effective_on.desc(), sc.id.desc())

    def one(*criteria: Any, order: Any = (sc.effective_on, sc.id)) -> Select[Any]:
        found = select(sc.id).where(mine, *criteria).order_by(*order).limit(1).subquery()
        return select(found.c.id)

    in_force = sc.effective_on <= on
    earliest = select(func.min(sc.effective_on)).where(mine).scalar_subquery()
    parts = [
        one(in_force, order=backwards),
        one(sc.effective_on > on),
        select(sc.id).where(mine, or_(sc.effective_on.is_(None), sc.effective_on == earliest)),
    ]
    if run:
        status = select(sc.status).where(mine, in_force).order_by(*backwards).limit(1).scalar_subquery()
        other = (
            select(sc.effective_on, sc.id)
            .where(mine, in_force, sc.status != status)
            .order_by(*backwards)
            .limit(1)
            .subquery()
        )
        other_on = select(other.c.effective_on).scalar_subquery()
        other_id = select(other.c.id).scalar_subquery()
        parts.append(select(other.c.id))  # where the walk back through the run stops
        parts.append(
            one(
                in_force,
                sc.effective_on >= other_on,  # bounds the index range; the next line orders ties
                or_(sc.effective_on > other_on, and_(sc.effective_on == other_on, sc.id > other_id)),
            )
        )
    return select(sc).where(sc.id.in_(union_all(*parts)))


_NEIGHBOURHOOD = _neighbourhood_statement(run=False)
_NEIGHBOURHOOD_RUN = _neighbourhood_statement(run=True)


def neighbourhood(
    session: Session, entry: Entry, on: date, *, run: bool = False
) -> tuple[list[StatusChange], list[Observation]]:
    """The part of the entry's timeline (every change, as known now) that decides its standing on
    `on` and what may be placed there, without reading the rest: `standing`, `place` and
    `lookups.answer` give the same result on it as on the whole timeline, for `on`.

    That is: the change in force on `on` and the next one after it; the entry's first dated
    changes and undated ones (they bound the stretch known only from evidence); with `run`, the
    last change in force to another status and the one after it (where the run of the status in
    force began: its `since`); and, only when no change is in force, the observations before the first
    dated change. One statement of index look-ups on (entry_id, effective_on, id), then at most
    one on (entry_id, observed_on), however long the history.
    """
    statement = _NEIGHBOURHOOD_RUN if run else _NEIGHBOURHOOD
    changes = ordered(session.scalars(statement, {"entry_id": entry.id, "on": on}))
    if any(c.effective_on is not None and c.effective_on <= on for c in changes):
        return changes, []  # a change is in force: evidence does not count
    query = select(Observation).where(Observation.entry_id == entry.id)
    dated = [c.effective_on for c in changes if c.effective_on is not None]
    if dated:
        query = query.where(Observation.observed_on < min(dated))
    return changes, visible(session.scalars(query))


def entry_state(
    session: Session,
    control_list: ControlList,
    country: Country,
    entry: Entry,
    as_of: date,
    recorded: Recorded | None = None,
) -> dict[str, Any]:
    """`lookups.entry_state` for the entry a write just changed (its version, its status on
    `as_of`), from its neighbourhood of `as_of` instead of every change of the country.
    `recorded`: the write's outcome, whose treatment look-up is reused."""
    if recorded is not None:
        treatment = recorded.treatment
    else:
        treatment = session.scalars(
            _TREATMENT, {"list_id": control_list.id, "country_code": country.alpha_2}
        ).one_or_none()
    if treatment is not None and lookups.treatment_applies(treatment, as_of, None):
        return lookups.entry_state(session, control_list, country, as_of)  # it answers as another
    known = recorded.neighbourhood_after(as_of) if recorded is not None else None
    observations: list[Observation] = []  # where a change is in force, evidence does not count
    if known is not None:
        changes = known
    else:
        changes, observations = neighbourhood(session, entry, as_of, run=True)
    return {
        "country": lookups.country_summary(country),
        **lookups.answer(control_list, country.alpha_2, changes, as_of, None, observations),
        "as_of": as_of,
        "version": entry.version,
    }


def record_status_change(
    session: Session,
    control_list: ControlList,
    country_code: str,
    request: ChangeRequest,
    *,
    recorded_at: datetime,
    actor: Actor,
    expected_versions: set[int] | None = None,
    must_exist: bool = False,
    publish: bool = True,
) -> Recorded:
    """Append a change to the entry (creating it on its first change) and emit its event.

    Raises VersionMismatch if the entry's version is not in `expected_versions` (or,
    with `must_exist`, the entry does not exist yet: `If-Match: *`), IllegalTransition if
    the status cannot follow the one in force at `effective_on`, and
    ConcurrentUpdate if another writer moved the entry first (safe to retry).
    With `publish`, the event is queued for webhook subscribers in the same
    transaction (the seed loader turns it off). The caller commits.
    """
    treatment = _refuse_if_treated(session, control_list, country_code, request.effective_on)
    entry = _lock_entry(session, control_list, country_code, recorded_at, expected_versions, must_exist)
    timeline, observations = neighbourhood(session, entry, request.effective_on or date.min, run=True)
    _validate(request, timeline, recorded_at)
    placement = _place_legally(control_list, timeline, observations, request)
    change = _append_change(session, entry, placement, request, recorded_at, actor)
    event = _announce(session, change, control_list, country_code, publish=publish)
    return Recorded(change=change, entry=entry, event=event, treatment=treatment, neighbours=timeline)


def _place_legally(
    control_list: ControlList,
    timeline: list[StatusChange],
    observations: list[Observation],
    request: ChangeRequest,
) -> Placement:
    """Where the change falls in the entry's timeline; IllegalTransition if it cannot go there
    (the status in force before it, or the next recorded change after it, forbids it)."""
    effective_on = request.effective_on or date.min
    placement = place(
        timeline,
        request.status,
        effective_on,
        observations,
        absence_known=lookups.membership_known(control_list, effective_on, None),
    )
    if placement.legal:
        return placement
    if request.status not in placement.allowed:
        before = placement.from_status.value if placement.from_status else "no status"
        detail = (
            f"{request.status.value} cannot follow {before}"
            f" (the status in force on {request.effective_on or 'that date'})."
        )
    else:
        following = placement.next_status.value if placement.next_status else "a status"
        detail = f"A later change already records {following}, which cannot follow {request.status.value}."
    raise IllegalTransition(
        detail,
        current_status=placement.from_status.value if placement.from_status else None,
        requested_status=request.status.value,
        allowed=[s.value for s in placement.allowed],
    )


def _append_change(
    session: Session,
    entry: Entry,
    placement: Placement,
    request: ChangeRequest,
    recorded_at: datetime,
    actor: Actor,
) -> StatusChange:
    """The change row, never edited afterwards, and the entry's next version."""
    change = StatusChange(
        entry=entry,
        from_status=placement.from_status.value if placement.from_status else None,
        status=request.status.value,
        effective_on=request.effective_on,
        expected_effective_on=request.expected_effective_on,
        recorded_at=recorded_at,
        note=request.note,
        sources=[with_kind(dict(source)) for source in jsonable(request.sources)],
        confidence=request.confidence,
        actor=actor.name,
        request_id=actor.request_id,
    )
    session.add(change)
    bump_version(session, entry)
    session.flush()
    schedule_notices(session, change, recorded_at)
    return change


def _announce(
    session: Session, change: StatusChange, control_list: ControlList, country_code: str, *, publish: bool
) -> Event:
    """The change's event, in this transaction; queued for subscribers with `publish`."""
    document = jsonable(lookups.change_document(change, control_list, country_code))
    event = emit(
        session,
        EventType.ENTRY_STATUS_CHANGED,
        document,
        country_code=country_code,
        list_id=control_list.id,
        change_id=change.id,
    )
    if publish:
        fan_out(session, event)
    return event


def record_observation(
    session: Session,
    control_list: ControlList,
    country_code: str,
    request: ObservationRequest,
    *,
    recorded_at: datetime,
    actor: Actor,
    expected_versions: set[int] | None = None,
    must_exist: bool = False,
) -> tuple[Observation, Entry]:
    """Append evidence of the entry's status on a date (creating the entry if new).

    An observation changes no status: it makes a status known from its date on, where
    no change records when that status began. It emits no status-change event, but
    moves the data version (answers may differ now). The caller commits.
    """
    errors: dict[str, list[str]] = {}
    if not request.sources:
        errors["sources"] = ["At least one source is required."]
    if request.observed_on > recorded_at.date():
        errors["observed_on"] = ["An observation shows a status on a date that has come; not in the future."]
    if errors:
        raise InvalidInput("Invalid " + ", ".join(f"'{name}'" for name in errors) + ".", errors)
    _refuse_if_treated(session, control_list, country_code, request.observed_on)
    entry = _lock_entry(session, control_list, country_code, recorded_at, expected_versions, must_exist)
    observation = Observation(
        entry=entry,
        status=request.status.value,
        observed_on=request.observed_on,
        recorded_at=recorded_at,
        note=request.note,
        sources=[with_kind(dict(source)) for source in jsonable(request.sources)],
        confidence=request.confidence,
        actor=actor.name,
        request_id=actor.request_id,
    )
    session.add(observation)
    bump_version(session, entry)
    session.flush()  # writing an observation moves the data version (events._bump_on_flush)
    return observation, entry
