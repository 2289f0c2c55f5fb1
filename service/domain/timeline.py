"""An entry's timeline: which status is in force on a date, as known at a moment, and on what evidence.

Changes are ordered by `effective_on` (an unrecorded date, NULL, first), then by
the order they were recorded. The change in force on `as_of` is the last dated
one effective on or before it; `known_at` hides changes and observations
recorded after it, so the service answers as it would have then. A backdated
correction is simply a change recorded later with an earlier `effective_on`.

Before an entry's first dated change, nothing says when its status began, so
the status is known only from evidence: observations (a dated source showing
the status on a date), a change's `from_status` (the status the day before it
took effect) and, from older databases, a change with no date (evidence as of
the day it was recorded). From the earliest such evidence on, the status it
shows is known; before it, the answer is `unknown`, never a status projected
into the past.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from service.domain.statuses import ALLOWED_NEXT, FROM_UNKNOWN, PENDING, Answer, Status, allowed_next


class ChangeLike(Protocol):
    id: int
    status: str
    from_status: str | None
    effective_on: date | None
    expected_effective_on: date | None
    recorded_at: datetime


class ObservationLike(Protocol):
    id: int
    status: str
    observed_on: date
    recorded_at: datetime


C = TypeVar("C", bound=ChangeLike)
Obs = TypeVar("Obs", bound=ObservationLike)


def timeline_key(change: ChangeLike) -> tuple[bool, date, int]:
    return (change.effective_on is not None, change.effective_on or date.min, change.id)


def ordered(changes: Iterable[C], known_at: datetime | None = None) -> list[C]:
    """The timeline as known at `known_at` (every change when None)."""
    visible = (c for c in changes if known_at is None or c.recorded_at <= known_at)
    return sorted(visible, key=timeline_key)


def visible(observations: Iterable[Obs], known_at: datetime | None = None) -> list[Obs]:
    """Observations on record at `known_at`, by date observed then recording order."""
    shown = (o for o in observations if known_at is None or o.recorded_at <= known_at)
    return sorted(shown, key=lambda o: (o.observed_on, o.id))


@dataclass(frozen=True, slots=True)
class Point:
    """Evidence that an entry had `status` on `on`."""

    on: date
    status: str
    origin: Any  # the observation or change it comes from
    kind: str  # "observation", "from_status" (a change's, the day before it) or "undated_change"


def evidence(timeline: Sequence[ChangeLike], observations: Sequence[ObservationLike]) -> list[Point]:
    points = [Point(o.observed_on, o.status, o, "observation") for o in observations]
    for change in timeline:
        if change.effective_on is None:
            points.append(Point(change.recorded_at.date(), change.status, change, "undated_change"))
        elif change.from_status is not None and change.effective_on > date.min:
            points.append(
                Point(change.effective_on - timedelta(days=1), change.from_status, change, "from_status")
            )
    return sorted(points, key=lambda p: p.on)


@dataclass(frozen=True, slots=True)
class Standing(Generic[C]):
    """The status on a date, with what it rests on.

    `basis` is `recorded_change` (a dated change in force: `change`), `observation`
    (evidence in a stretch with no change: `points`) or `no_data` (`status` is
    unknown, `reason` says why).
    """

    status: str
    basis: str
    change: C | None = None
    # When the current run of this status began (None: a date not recorded).
    since: date | None = None
    # For a pending status: when it was announced, and when it is expected to take effect.
    announced_on: date | None = None
    expected_effective_on: date | None = None
    # Where the start is not recorded: the earliest evidence of this status (or, for
    # `before_first_observation`, the date from which the status is known).
    observed_since: date | None = None
    reason: str | None = None
    points: list[Point] = field(default_factory=list)


def _from_changes(in_force: Sequence[C]) -> Standing[C]:
    current = in_force[-1]
    first = current
    for change in reversed(in_force[:-1]):
        if change.status != current.status:
            break
        first = change
    pending = Status(current.status) in PENDING
    return Standing(
        status=current.status,
        basis="recorded_change",
        change=current,
        since=first.effective_on,
        announced_on=first.effective_on if pending else None,
        expected_effective_on=current.expected_effective_on if pending else None,
    )


def standing(
    timeline: Sequence[C], as_of: date, observations: Sequence[ObservationLike] = ()
) -> Standing[C] | None:
    """The status on `as_of` in an ordered timeline, or None when nothing at all is recorded for
    the stretch that holds it (the list's completeness may still tell)."""
    dated = [c for c in timeline if c.effective_on is not None]
    in_force = [c for c in dated if c.effective_on is not None and c.effective_on <= as_of]
    if in_force:
        return _from_changes(in_force)
    # The stretch before the first dated change: known only from evidence.
    end = dated[0].effective_on if dated else None
    points = [p for p in evidence(timeline, observations) if end is None or p.on < end]
    if not points:
        return None
    before = [p for p in points if p.on <= as_of]
    if not before:
        return Standing(
            status=Answer.UNKNOWN.value,
            basis="no_data",
            observed_since=points[0].on,
            reason="before_first_observation",
        )
    latest = before[-1]
    later = [p for p in points if p.on > as_of]
    if later and later[0].status != latest.status:
        return Standing(status=Answer.UNKNOWN.value, basis="no_data", reason="unrecorded_change")
    run = [latest]
    for point in reversed(before[:-1]):
        if point.status != latest.status:
            break
        run.append(point)
    return Standing(status=latest.status, basis="observation", observed_since=run[-1].on, points=run)


def first_known(timeline: Sequence[ChangeLike], observations: Sequence[ObservationLike]) -> date | None:
    """The earliest date anything is on record for: a dated change's, or a piece of evidence's."""
    dates = [c.effective_on for c in timeline if c.effective_on is not None]
    dates += [p.on for p in evidence(timeline, observations)]
    return min(dates, default=None)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new change falls in a timeline, and whether it may go there."""

    from_status: Status | None
    allowed: list[Status]
    next_status: Status | None
    legal: bool


def place(
    timeline: Sequence[ChangeLike],
    status: Status,
    effective_on: date,
    observations: Sequence[ObservationLike] = (),
    *,
    absence_known: bool = True,
) -> Placement:
    """Check a new change against the status known at its date and the change after it.

    The status in force at `effective_on` (from changes or evidence) must allow
    `status` next; where nothing is known there (`unknown`, or absent from a list
    that is not complete: `absence_known` False), any status may start the record.
    If a later change already exists (a backdated insertion), it must in turn
    follow `status` legally, or restate it.
    """
    current = standing(timeline, effective_on, observations)
    unknown = False
    from_status: Status | None = None
    if current is None:
        unknown = not absence_known
    elif current.status == Answer.UNKNOWN:
        unknown = True
    elif current.status != Answer.NOT_LISTED:
        from_status = Status(current.status)
    after = [c for c in timeline if c.effective_on is not None and c.effective_on > effective_on]
    next_status = Status(after[0].status) if after else None
    allowed = allowed_next(from_status, unknown=unknown)
    legal = status in (FROM_UNKNOWN if unknown else ALLOWED_NEXT[from_status]) and (
        next_status is None or next_status == status or next_status in ALLOWED_NEXT[status]
    )
    return Placement(from_status=from_status, allowed=allowed, next_status=next_status, legal=legal)
