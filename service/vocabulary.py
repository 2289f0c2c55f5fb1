"""Every vocabulary of the service, each one enum defined once.

Models (check constraints), the domain (rules) and schemas (validation and the
OpenAPI document) all import these; none keeps a copy of their values.
"""

from enum import IntEnum, StrEnum


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


class EvidenceKind(StrEnum):
    """What kind of source a fact rests on, strongest first (the order `min_evidence` compares by)."""

    REGULATION = "regulation"  # Federal Register, eCFR, Official Journal, a cabinet order
    OFFICIAL_STATEMENT = "official_statement"  # a government readout or notice
    PRESS = "press"
    SECONDARY = "secondary"  # law-firm or trade summaries
    DATASET = "dataset"  # a machine-parsed copy

    @property
    def strength(self) -> int:
        """Higher is stronger."""
        return _EVIDENCE_STRENGTH[self]


_EVIDENCE_STRENGTH = {kind: len(EvidenceKind) - index for index, kind in enumerate(EvidenceKind)}


class Confidence(StrEnum):
    """How sure the reference is of a fact (low-confidence facts are kept, never promoted)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class EventType(StrEnum):
    ENTRY_STATUS_CHANGED = "entry.status_changed"
    ENTRY_TOOK_EFFECT = "entry.took_effect"
    ENTRY_PENDING_OVERDUE = "entry.pending_overdue"
    LIST_CREATED = "list.created"
    LIST_UPDATED = "list.updated"
    WEBHOOK_PING = "webhook.ping"
    WEBHOOK_FAILING = "webhook.failing"
    WEBHOOK_RECOVERED = "webhook.recovered"
    WEBHOOK_DISABLED = "webhook.disabled"
    PROPOSAL_CREATED = "proposal.created"
    LIST_STALE = "list.stale"

    @property
    def public(self) -> bool:
        """Data changes are public (the feed); webhook.*, proposal.* and list.stale are not."""
        return not self.value.startswith(("webhook.", "proposal.")) and self is not EventType.LIST_STALE

    @property
    def opt_in(self) -> bool:
        """Sent only to subscriptions that name the type (editors' tooling: proposals, lists turning
        stale), never to catch-alls."""
        return self.value.startswith("proposal.") or self is EventType.LIST_STALE

    @property
    def operational(self) -> bool:
        """About one webhook subscription (its URL, its failures): webhook.*."""
        return self.value.startswith("webhook.")


class Role(IntEnum):
    """API key roles, ordered: each may do what the ones below it may."""

    READER = 1
    EDITOR = 2
    ADMIN = 3

    @classmethod
    def named(cls, name: str) -> "Role":
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class DeliveryState(StrEnum):
    """Where one event's delivery to one subscription stands."""

    PENDING = "pending"  # due at next_attempt_at
    DELIVERING = "delivering"  # claimed by a worker, under its lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # no attempts left, or the receiver said 410 Gone
    CANCELLED = "cancelled"  # its subscription was deleted


class ProposalState(StrEnum):
    """Where an importer's proposal stands."""

    PENDING = "pending"  # waiting for an editor
    APPROVED = "approved"  # recorded as a change
    REJECTED = "rejected"  # with a reason
    STALE = "stale"  # overtaken by a change recorded since it was made


def values(enum: type[StrEnum]) -> list[str]:
    """An enum's values, in declaration order (for check constraints and schemas)."""
    return [member.value for member in enum]
