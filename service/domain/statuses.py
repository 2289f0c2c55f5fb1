"""Statuses of an entry, the transitions between them, and what they mean."""

from enum import StrEnum


class Status(StrEnum):
    """A recorded status of a country on a list."""

    LISTED = "listed"
    PENDING_REMOVAL = "pending_removal"
    REMOVED = "removed"
    PENDING_ADDITION = "pending_addition"


class Answer(StrEnum):
    """What a lookup answers: a recorded status, or what follows from its absence."""

    LISTED = "listed"
    PENDING_REMOVAL = "pending_removal"
    REMOVED = "removed"
    PENDING_ADDITION = "pending_addition"
    NOT_LISTED = "not_listed"
    UNKNOWN = "unknown"


class Effect(StrEnum):
    """Whether membership of a list restricts exports (EAR D, E) or favours them (A, B)."""

    RESTRICTIVE = "restrictive"
    FAVOURABLE = "favourable"


PENDING = frozenset({Status.PENDING_REMOVAL, Status.PENDING_ADDITION})

# Legal next statuses. `None` is an entry with no change yet. A pending status
# may follow itself: that restates the announcement (new expected date, new source).
ALLOWED_NEXT: dict[Status | None, frozenset[Status]] = {
    None: frozenset({Status.LISTED, Status.PENDING_ADDITION}),
    Status.LISTED: frozenset({Status.PENDING_REMOVAL, Status.REMOVED}),
    Status.PENDING_REMOVAL: frozenset({Status.PENDING_REMOVAL, Status.REMOVED, Status.LISTED}),
    Status.REMOVED: frozenset({Status.LISTED, Status.PENDING_ADDITION}),
    Status.PENDING_ADDITION: frozenset({Status.PENDING_ADDITION, Status.LISTED, Status.REMOVED}),
}


def allowed_next(status: Status | None) -> list[Status]:
    """Statuses that may legally follow `status`, in declaration order."""
    allowed = ALLOWED_NEXT[status]
    return [s for s in Status if s in allowed]


def restrictions_apply(status: Answer | Status | str, effect: Effect | str) -> bool:
    """Restrictions hold while listed, and still while a removal is only pending."""
    return effect == Effect.RESTRICTIVE and status in (Status.LISTED, Status.PENDING_REMOVAL)
