"""Statuses of an entry, the transitions between them, and what they mean."""

from collections.abc import Iterable

from service.vocabulary import Answer, Effect, EvidenceKind, Status

__all__ = ["PENDING", "Answer", "Effect", "EvidenceKind", "Status", "allowed_next", "restrictions_apply"]


def strongest(kinds: Iterable[str | None]) -> EvidenceKind | None:
    """The strongest of these kinds (None when there are none)."""
    found = [EvidenceKind(k) for k in kinds if k]
    return max(found, key=lambda k: k.strength) if found else None


PENDING = frozenset({Status.PENDING_REMOVAL, Status.PENDING_ADDITION})

# What an observation may show: a recorded status, or absence.
OBSERVABLE = [a.value for a in Answer if a != Answer.UNKNOWN]

# Legal next statuses. `None` is an entry with no change yet. A pending status
# may follow itself: that restates the announcement (new expected date, new source).
ALLOWED_NEXT: dict[Status | None, frozenset[Status]] = {
    None: frozenset({Status.LISTED, Status.PENDING_ADDITION}),
    Status.LISTED: frozenset({Status.PENDING_REMOVAL, Status.REMOVED}),
    Status.PENDING_REMOVAL: frozenset({Status.PENDING_REMOVAL, Status.REMOVED, Status.LISTED}),
    Status.REMOVED: frozenset({Status.LISTED, Status.PENDING_ADDITION}),
    Status.PENDING_ADDITION: frozenset({Status.PENDING_ADDITION, Status.LISTED, Status.REMOVED}),
}


# Before the first thing known about an entry, any status may be recorded: true history
# often starts mid-way (a removal whose earlier listing is not on record).
FROM_UNKNOWN = frozenset(Status)


def allowed_next(status: Status | None, *, unknown: bool = False) -> list[Status]:
    """Statuses that may legally follow `status` (`unknown`: nothing is known before), in order."""
    allowed = FROM_UNKNOWN if unknown else ALLOWED_NEXT[status]
    return [s for s in Status if s in allowed]


def restrictions_apply(status: Answer | Status | str, effect: Effect | str) -> bool:
    """Restrictions hold while listed, and still while a removal is only pending."""
    return effect == Effect.RESTRICTIVE and status in (Status.LISTED, Status.PENDING_REMOVAL)
