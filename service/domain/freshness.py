"""Freshness: when each list's membership was last checked against its source, when it last
changed, and whether it is stale.

A check is a `ListCheck` row (the eCFR importer writes one when the table agrees; an
editor records one by hand). A list never checked carries its reference's date: the
latest publication date among its sources (the eCFR table the seeds were read from).
Lists whose source publishes amendments (eCFR, Federal Register) go stale sooner.
"""

import bisect
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from service.config import parse_duration
from service.domain import lookups
from service.domain.events import emit
from service.domain.jsonable import jsonable
from service.domain.outbox import fan_out
from service.domain.sources import with_kind
from service.domain.statuses import EvidenceKind
from service.models import ControlList, Entry, Event, ListCheck, Observation, StatusChange
from service.vocabulary import EventType

AMENDING_HOSTS = ("ecfr.gov", "federalregister.gov")


def _host(url: str | None) -> str:
    try:
        return (urlsplit(url or "").hostname or "").lower()
    except ValueError:
        return ""


def publishes_amendments(control_list: ControlList) -> bool:
    urls = [control_list.url] + [s.get("url") for s in control_list.sources or []]
    return any(_host(u) == h or _host(u).endswith("." + h) for u in urls for h in AMENDING_HOSTS)


def max_age(control_list: ControlList, config: Mapping[str, Any]) -> timedelta:
    by_list = config.get("FRESHNESS_MAX_AGE_BY_LIST") or {}
    if control_list.id in by_list:
        return parse_duration(by_list[control_list.id])
    key = "FRESHNESS_MAX_AGE_AMENDED" if publishes_amendments(control_list) else "FRESHNESS_MAX_AGE"
    return parse_duration(config[key])


def calendar_age(checked_at: datetime | None, now: datetime) -> timedelta | None:
    """How long ago a check was, in whole UTC calendar days: the same all day long, so every
    answer given on one day agrees on it, however early or late it is asked (and a document
    kept for the day stays true all day)."""
    return now.date() - checked_at.date() if checked_at is not None else None


def is_stale(checked_at: datetime | None, limit: timedelta, now: datetime) -> bool:
    """Whether a list last checked at `checked_at` (None: never) is stale on `now`'s day."""
    age = calendar_age(checked_at, now)
    return age is None or age > limit


def _reference(control_list: ControlList) -> tuple[datetime, dict[str, Any]] | None:
    """The list's reference date, as a check at 00:00 UTC that day: the date of its strongest
    dated source (the eCFR table it was loaded from, not a later machine-parsed copy of it)."""
    dated = [with_kind(s) for s in control_list.sources or [] if s.get("published_on")]
    if not dated:
        return None
    source = max(dated, key=lambda s: (EvidenceKind(s["kind"]).strength, str(s["published_on"])))
    day = date.fromisoformat(str(source["published_on"]))
    return datetime(day.year, day.month, day.day, tzinfo=UTC), with_kind(source)


def latest_checks(session: Session, list_ids: list[str]) -> dict[str, ListCheck]:
    query = select(ListCheck).where(ListCheck.list_id.in_(list_ids))
    query = query.order_by(ListCheck.list_id, ListCheck.checked_at, ListCheck.id)
    return {check.list_id: check for check in session.scalars(query)}


def check_times(session: Session, list_ids: list[str]) -> dict[str, list[datetime]]:
    """When each list was checked, oldest first: what its latest check was at any moment (a
    check's `checked_at` is when it was recorded)."""
    query = select(ListCheck.list_id, ListCheck.checked_at).where(ListCheck.list_id.in_(list_ids))
    times: dict[str, list[datetime]] = {}
    for list_id, checked_at in session.execute(query.order_by(ListCheck.list_id, ListCheck.checked_at)):
        times.setdefault(list_id, []).append(checked_at)
    return times


def reference_at(control_list: ControlList) -> datetime | None:
    """The list's reference date (see `_reference`), as a check at 00:00 UTC that day."""
    found = _reference(control_list)
    return found[0] if found is not None else None


def last_changes(session: Session, list_ids: list[str]) -> dict[str, datetime]:
    rows = session.execute(
        select(Entry.list_id, func.max(StatusChange.recorded_at))
        .join(StatusChange, StatusChange.entry_id == Entry.id)
        .where(Entry.list_id.in_(list_ids))
        .group_by(Entry.list_id)
    )
    return dict(rows.all())


def _newest(
    session: Session,
    model: type[Observation] | type[StatusChange],
    day_column: InstrumentedAttribute[date] | InstrumentedAttribute[date | None],
    list_ids: list[str],
    today: date,
    known_at: datetime | None = None,
) -> dict[str, tuple[date, dict[str, Any]]]:
    known = [model.recorded_at <= known_at] if known_at is not None else []
    newest = (
        select(Entry.list_id, func.max(day_column).label("on"))
        .join(model, model.entry_id == Entry.id)
        .where(Entry.list_id.in_(list_ids), day_column <= today, *known)
        .group_by(Entry.list_id)
        .subquery()
    )
    rows = session.execute(
        select(Entry.list_id, day_column, model.sources)
        .join(model, model.entry_id == Entry.id)
        .join(newest, (newest.c.list_id == Entry.list_id) & (newest.c.on == day_column))
        .where(*known)
        .order_by(Entry.list_id, model.id)
    )
    out: dict[str, tuple[date, dict[str, Any]]] = {}
    for row in rows:  # mypy types an unpacked Row as `object`s (SQLAlchemy 2.1); indexing is Any
        list_id: str = row[0]
        day: date = row[1]
        sources: list[Any] = row[2]
        if list_id not in out and sources:
            out[list_id] = (day, with_kind(sources[0]))
    return out


def latest_evidence(
    session: Session, list_ids: list[str], today: date, known_at: datetime | None = None
) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """Each list's newest dated evidence (an observation, or a change in effect), as a reference
    date (00:00 UTC) with one of its sources: what a list with no dated source of its own was
    read from. `known_at`: only evidence recorded by then."""
    found = _newest(session, Observation, Observation.observed_on, list_ids, today, known_at)
    for list_id, (day, source) in _newest(
        session, StatusChange, StatusChange.effective_on, list_ids, today, known_at
    ).items():
        if list_id not in found or day > found[list_id][0]:
            found[list_id] = (day, source)
    return {
        list_id: (datetime(day.year, day.month, day.day, tzinfo=UTC), source)
        for list_id, (day, source) in found.items()
    }


class EvidenceTimeline:
    """A list's dated evidence (observations, changes with a date), for `latest_evidence`'s day
    at any moment without a query. A piece of evidence counts at moment T when it was recorded by
    T and its day has begun by T: from the later of the two (`since`) on. The newest day counted
    at T is the largest day among the pieces whose `since` is at most T: a search in `since`
    order, over the running maximum of days."""

    def __init__(self, pieces: list[tuple[datetime, date]]):
        pieces.sort()
        self.since = [since for since, _day in pieces]
        self.newest: list[date] = []
        for _since, day in pieces:
            self.newest.append(max(day, self.newest[-1]) if self.newest else day)

    def at(self, moment: datetime) -> datetime | None:
        """The newest day of evidence known and begun at `moment` (00:00 UTC), if any."""
        counted = bisect.bisect_right(self.since, moment)
        if not counted:
            return None
        day = self.newest[counted - 1]
        return datetime(day.year, day.month, day.day, tzinfo=UTC)


def evidence_timelines(session: Session, list_ids: list[str]) -> dict[str, EvidenceTimeline]:
    """Each list's EvidenceTimeline (lists with no dated evidence have none)."""
    pieces: dict[str, list[tuple[datetime, date]]] = {}
    for model, day_column in (
        (Observation, Observation.observed_on),
        (StatusChange, StatusChange.effective_on),
    ):
        rows = session.execute(
            select(Entry.list_id, day_column, model.recorded_at)
            .join(model, model.entry_id == Entry.id)
            .where(Entry.list_id.in_(list_ids), day_column.is_not(None))
        )
        for list_id, evidence_day, recorded_at in rows:
            day = cast(date, evidence_day)  # never NULL here: the query leaves those out
            begun = datetime(day.year, day.month, day.day, tzinfo=UTC)
            pieces.setdefault(list_id, []).append((max(recorded_at, begun), day))
    return {list_id: EvidenceTimeline(found) for list_id, found in pieces.items()}


def check_document(check: ListCheck) -> dict[str, Any]:
    return {
        "id": check.id,
        "list_id": check.list_id,
        "as_of": check.as_of,
        "checked_at": check.checked_at,
        "origin": check.origin,
        "source": with_kind(check.source) if check.source.get("url") else check.source,
        "found": check.found,
        "note": check.note,
        "actor": check.actor,
    }


def statuses(
    session: Session, config: Mapping[str, Any], now: datetime, lists: list[ControlList] | None = None
) -> list[dict[str, Any]]:
    """Each list's freshness at `now` (five queries however many lists)."""
    lists = lookups.all_lists(session) if lists is None else lists
    ids = [cl.id for cl in lists]
    checks = latest_checks(session, ids)
    changed = last_changes(session, ids)
    observed = latest_evidence(session, ids, now.date())
    out = []
    for control_list in lists:
        checked_at: datetime | None
        source: dict[str, Any] | None
        origin: str | None
        found: str | None
        check = checks.get(control_list.id)
        if check is not None:
            checked_at, source, origin, found = check.checked_at, check.source, check.origin, check.found
        elif (reference := _reference(control_list)) is not None:
            (checked_at, source), origin, found = reference, "reference", None
        elif control_list.id in observed:
            # No dated source of its own: its newest dated evidence is the reference it was read from.
            (checked_at, source), origin, found = observed[control_list.id], "reference", None
        else:
            checked_at = source = origin = found = None
        limit = max_age(control_list, config)
        age = calendar_age(checked_at, now)
        out.append(
            {
                "list": lookups.list_ref(control_list),
                "checked_at": checked_at,
                "check_origin": origin,
                "check_source": with_kind(source) if source and source.get("url") else None,
                "found": found,
                "changed_at": changed.get(control_list.id),
                "age_days": age.days if age is not None else None,
                "max_age_days": limit.days,
                "publishes_amendments": publishes_amendments(control_list),
                "stale": is_stale(checked_at, limit, now),
            }
        )
    return out


def record_check(
    session: Session,
    control_list: ControlList,
    *,
    as_of: date,
    source: dict[str, Any],
    found: str,
    note: str | None,
    actor: str | None,
    now: datetime,
) -> ListCheck:
    """An editor's check of the list against its source. Records no change, whatever was found;
    moves the data version (freshness answers differ now)."""
    check = ListCheck(
        list_id=control_list.id,
        as_of=as_of,
        checked_at=now,
        origin="manual",
        document_key=str(source.get("url", ""))[:200],
        source=jsonable(source),
        actor=actor,
        found=found,
        note=note,
    )
    session.add(check)
    session.flush()  # country answers show when lists were checked: this moves the data version
    return check


_NEVER = object()


def _announced(session: Session, list_id: str | None = None) -> dict[str | None, Any]:
    """The `checked_at` each list's latest list.stale event announced as too old."""
    query = select(Event.list_id, Event.data).where(Event.type == EventType.LIST_STALE.value)
    if list_id is not None:
        query = query.where(Event.list_id == list_id)
    return {row.list_id: row.data.get("checked_at") for row in session.execute(query.order_by(Event.id))}


def emit_stale(
    sessionmaker: sessionmaker[Session],
    config: Mapping[str, Any],
    now: datetime,
    *,
    begin_write: Callable[[Session], None],
) -> int:
    """Emit `list.stale` once for each list that has turned stale since its last check: a
    list stays announced until a newer check (a new `checked_at`) makes it fresh again."""
    with sessionmaker() as session:
        announced = _announced(session)
        stale = [
            s
            for s in statuses(session, config, now)
            if s["stale"] and announced.get(s["list"]["id"], _NEVER) != jsonable(s["checked_at"])
        ]
    emitted = 0
    for status in stale:  # usually none: the poll above is read-only
        with sessionmaker() as session:
            begin_write(session)
            # Serialises workers per list on PostgreSQL; SQLite's BEGIN IMMEDIATE already does.
            control_list = session.scalars(
                select(ControlList).where(ControlList.id == status["list"]["id"]).with_for_update()
            ).one()
            checked_at = jsonable(status["checked_at"])
            if _announced(session, control_list.id).get(control_list.id, _NEVER) == checked_at:
                session.rollback()
                continue
            event = emit(
                session,
                EventType.LIST_STALE,
                jsonable(status),
                list_id=control_list.id,
                occurred_at=now,
            )
            fan_out(session, event)
            session.commit()
            emitted += 1
    return emitted
