"""An entry's timeline: which recorded change is in force on a date, as known at a moment.

Changes are ordered by `effective_on` (an unrecorded date, NULL, first), then by
the order they were recorded. The change in force on `as_of` is the last one
effective on or before it; `known_at` hides changes recorded after it, so the
service answers as it would have then. A backdated correction is simply a
change recorded later with an earlier `effective_on`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from service.domain.statuses import ALLOWED_NEXT, PENDING, Status, allowed_next


class ChangeLike(Protocol):
    id: int
    status: str
    effective_on: date | None
    expected_effective_on: date | None
    recorded_at: datetime


def timeline_key(change: ChangeLike) -> tuple:
    return (change.effective_on is not None, change.effective_on or date.min, change.id)


def ordered(changes: Iterable[ChangeLike], known_at: datetime | None = None) -> list:
    """The timeline as known at `known_at` (every change when None)."""
    visible = (c for c in changes if known_at is None or c.recorded_at <= known_at)
    return sorted(visible, key=timeline_key)


@dataclass(frozen=True, slots=True)
class Standing:
    """The status in force, with the change that set it and the run it belongs to."""

    change: ChangeLike
    status: Status
    # When the current run of this status began (NULL: an unrecorded date).
    since: date | None
    # For a pending status: when it was announced, and when it is expected to take effect.
    announced_on: date | None
    expected_effective_on: date | None


def standing(timeline: Sequence[ChangeLike], as_of: date) -> Standing | None:
    """The status in force on `as_of` in an ordered timeline, or None before any change."""
    in_force = [c for c in timeline if c.effective_on is None or c.effective_on <= as_of]
    if not in_force:
        return None
    current = in_force[-1]
    first = current
    for change in reversed(in_force[:-1]):
        if change.status != current.status:
            break
        first = change
    status = Status(current.status)
    pending = status in PENDING
    return Standing(
        change=current,
        status=status,
        since=first.effective_on,
        announced_on=first.effective_on if pending else None,
        expected_effective_on=current.expected_effective_on if pending else None,
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new change falls in a timeline, and whether it may go there."""

    from_status: Status | None
    allowed: list[Status]
    next_status: Status | None
    legal: bool


def place(timeline: Sequence[ChangeLike], status: Status, effective_on: date) -> Placement:
    """Check a new change against the change before it and the one after it.

    The status in force at `effective_on` must allow `status` next. If a later
    change already exists (a backdated insertion), it must in turn follow
    `status` legally, or restate it.
    """
    before = [c for c in timeline if c.effective_on is None or c.effective_on <= effective_on]
    after = [c for c in timeline if c.effective_on is not None and c.effective_on > effective_on]
    from_status = Status(before[-1].status) if before else None
    next_status = Status(after[0].status) if after else None
    allowed = allowed_next(from_status)
    legal = status in ALLOWED_NEXT[from_status] and (
        next_status is None or next_status == status or next_status in ALLOWED_NEXT[status]
    )
    return Placement(from_status=from_status, allowed=allowed, next_status=next_status, legal=legal)
