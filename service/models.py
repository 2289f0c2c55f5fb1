"""SQLAlchemy 2.0 typed models. Alembic migrations (service/migrations) are the schema."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from service.db import UTCDateTime
from service.domain.statuses import OBSERVABLE, Effect, Status
from service.vocabulary import Confidence, DeliveryState, ProposalState, Role, values

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


STATUSES = [s.value for s in Status]
PENDING_STATUSES = [Status.PENDING_REMOVAL.value, Status.PENDING_ADDITION.value]
CONFIDENCES = values(Confidence)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class ControlList(Base):
    """A strategic export-control list (one EAR country group, an EU annex, ...)."""

    __tablename__ = "control_lists"
    __table_args__ = (
        CheckConstraint(_in("effect", [e.value for e in Effect]), name="effect"),
        CheckConstraint("id <> ''", name="id_not_empty"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(64))
    authority: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2000))
    effect: Mapped[str] = mapped_column(String(16))
    membership_complete: Mapped[bool]
    # From this date on, a country absent from a complete list is `not_listed`;
    # before it, absence proves nothing (`unknown`). NULL: no such bound.
    membership_complete_from: Mapped[date | None]
    description: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[Any]] = mapped_column(default=list)
    recorded_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    entries: Mapped[list["Entry"]] = relationship(back_populates="control_list")
    treatments: Mapped[list["Treatment"]] = relationship(order_by="Treatment.country_code")


class Entry(Base):
    """A country on a list. Its status lives in its append-only changes."""

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("list_id", "country_code"),
        Index(None, "country_code"),
        CheckConstraint("version >= 0", name="version_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[str] = mapped_column(ForeignKey("control_lists.id"))
    country_code: Mapped[str] = mapped_column(String(2))
    # Bumped by every change: the optimistic-concurrency token behind ETag/If-Match.
    version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]

    control_list: Mapped[ControlList] = relationship(back_populates="entries")
    changes: Mapped[list["StatusChange"]] = relationship(back_populates="entry", order_by="StatusChange.id")
    observations: Mapped[list["Observation"]] = relationship(
        back_populates="entry", order_by="Observation.id"
    )


class StatusChange(Base):
    """One recorded status change. Never updated, never deleted."""

    __tablename__ = "status_changes"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint("from_status IS NULL OR " + _in("from_status", STATUSES), name="from_status"),
        CheckConstraint(
            "expected_effective_on IS NULL OR " + _in("status", PENDING_STATUSES),
            name="expected_only_when_pending",
        ),
        Index(None, "entry_id", "id"),
        # A lookup's one seek, and a write's placement among its neighbours: the changes of an
        # entry by effective_on then recording order, never the whole timeline (recorded_at lets
        # `known_at` skip later recordings without reading the rows).
        Index(None, "entry_id", "effective_on", "id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id"))
    from_status: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    # Legal date the status took effect; for a pending status, the announcement
    # date. NULL: in force since a date the data does not record.
    effective_on: Mapped[date | None]
    expected_effective_on: Mapped[date | None]
    recorded_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[Any]]
    actor: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(200))
    # How sure the record is (high, medium, low), where its source graded it.
    confidence: Mapped[str | None] = mapped_column(String(16))

    entry: Mapped[Entry] = relationship(back_populates="changes")


class Observation(Base):
    """Dated evidence that an entry had a status on a date, without a change. Never updated, never deleted.

    Observations make a status known from their date on where no change records when it
    began (an eCFR table shows memberships on its issue date, not since when).
    """

    __tablename__ = "observations"
    __table_args__ = (
        CheckConstraint(_in("status", OBSERVABLE), name="status"),
        CheckConstraint("confidence IS NULL OR " + _in("confidence", CONFIDENCES), name="confidence"),
        Index(None, "entry_id", "id"),
        Index(None, "entry_id", "observed_on"),  # evidence before an entry's first dated change
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id"))
    status: Mapped[str] = mapped_column(String(32))
    observed_on: Mapped[date]
    recorded_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[Any]]
    confidence: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(200))

    entry: Mapped[Entry] = relationship(back_populates="observations")


class Counter(Base):
    """Named monotonic counters. `events` numbers the feed.

    Incrementing it takes a row lock held to commit, so event numbers become
    visible in order: a feed reader paging by `after` can never skip one.
    """

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """The change feed and the webhook outbox's source: one row per event."""

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "type", "id"),
        Index(None, "country_code", "id"),
        Index(None, "list_id", "id"),
        Index(None, "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    country_code: Mapped[str | None] = mapped_column(String(2))
    list_id: Mapped[str | None] = mapped_column(String(64))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("status_changes.id"))
    data: Mapped[dict[str, Any]]
    # Public events (data changes) are the feed; operational ones (webhook.*) only go to
    # the subscriptions that ask for them.
    public: Mapped[bool] = mapped_column(default=True, server_default=true())


class Treatment(Base):
    """On a list, a country takes another's status (Hong Kong as China under the EAR)."""

    __tablename__ = "treatments"
    __table_args__ = (
        UniqueConstraint("list_id", "country_code"),
        CheckConstraint("country_code <> treated_as", name="not_itself"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[str] = mapped_column(ForeignKey("control_lists.id"))
    country_code: Mapped[str] = mapped_column(String(2))
    treated_as: Mapped[str] = mapped_column(String(2))
    effective_on: Mapped[date]
    recorded_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[Any]]


ROLES = [role.label for role in Role]


class ApiKey(Base):
    """An API key. Only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        # A name may be reused once the key that held it is revoked.
        Index(
            "uq_api_keys_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(Base):
    """The response to a POST made with an Idempotency-Key, replayed when the POST is retried."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("api_key_id", "key"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response_body: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any]]
    # How to complete a stored response on replay (it may have held a secret not kept here).
    replay: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


DELIVERY_STATES = values(DeliveryState)


class Webhook(Base):
    """A subscription: events matching its filters are pushed, signed, to its URL."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    # Filters; an empty list matches everything.
    countries: Mapped[list[Any]] = mapped_column(default=list)
    lists: Mapped[list[Any]] = mapped_column(default=list)
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    # Set by an admin key naming webhook.* event types: this subscription receives those events
    # about every subscription (operations tooling); others receive only those about themselves.
    operations: Mapped[bool] = mapped_column(default=False, server_default=false())
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None]
    # Signing secrets (whsec_…). Needed in the clear to sign; never returned after creation.
    secret: Mapped[str] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None]
    # Set by the first failed attempt since the last success (a streak restarts after a
    # gap longer than any retry delay); last_failed_at tells how recent the streak is.
    failing_since: Mapped[datetime | None]
    last_failed_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Delivery(Base):
    """One event to one webhook: the outbox row the worker claims, sends and retries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(_in("state", DELIVERY_STATES), name="state"),
        Index(None, "state", "next_attempt_at"),
        Index(None, "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    # A claimed delivery belongs to one worker until its lease expires.
    leased_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    reason: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    webhook: Mapped[Webhook] = relationship()
    event: Mapped[Event] = relationship()
    attempt_log: Mapped[list["DeliveryAttempt"]] = relationship(order_by="DeliveryAttempt.id")


class DeliveryAttempt(Base):
    """One HTTP attempt of a delivery, for the delivery log."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    attempted_at: Mapped[datetime]
    duration_ms: Mapped[int]
    http_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(1000))
    response_body: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str] = mapped_column(String(200))


class AuditEntry(Base):
    """Who changed what outside the status history: lists and webhook subscriptions."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "subject", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


PROPOSAL_STATES = values(ProposalState)
PROPOSAL_KINDS = ["change", "review"]
PROPOSAL_ORIGINS = ["ecfr", "federal-register"]


class Proposal(Base):
    """A change an importer read in the regulator's publications, waiting for a person's decision.

    `change` proposals name an entry and a status; `review` proposals carry a document
    the importer could not map to entries with confidence, for a person to read.
    """

    __tablename__ = "proposals"
    __table_args__ = (
        CheckConstraint(_in("state", PROPOSAL_STATES), name="state"),
        CheckConstraint(_in("kind", PROPOSAL_KINDS), name="kind"),
        CheckConstraint(_in("origin", PROPOSAL_ORIGINS), name="origin"),
        CheckConstraint("status IS NULL OR " + _in("status", STATUSES), name="status"),
        CheckConstraint(
            "kind = 'review' OR (list_id IS NOT NULL AND country_code IS NOT NULL AND status IS NOT NULL)",
            name="change_names_entry",
        ),
        Index(None, "state", "id"),
        Index(None, "list_id", "country_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=ProposalState.PENDING.value)
    origin: Mapped[str] = mapped_column(String(32))
    # The document it came from ("ecfr:15-740:2026-12-01", "fr:2026-21345") and what the
    # importer kept of it; the same document imported twice proposes nothing new.
    document_key: Mapped[str] = mapped_column(String(200))
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(400), unique=True)
    list_id: Mapped[str | None] = mapped_column(ForeignKey("control_lists.id"))
    country_code: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str | None] = mapped_column(String(32))
    effective_on: Mapped[date | None]
    expected_effective_on: Mapped[date | None]
    note: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[Any]] = mapped_column(default=list)
    # What the service answered when the proposal was made, and the entry's version then:
    # a change recorded since makes the proposal stale instead of being overwritten.
    observed_status: Mapped[str | None] = mapped_column(String(32))
    base_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("status_changes.id"))

    control_list: Mapped[ControlList | None] = relationship()


CHECK_FINDINGS = ["unchanged", "differences"]


class ListCheck(Base):
    """A list's membership compared with the regulator's text and found to agree (freshness)."""

    __tablename__ = "list_checks"
    __table_args__ = (
        Index(None, "list_id", "checked_at"),
        CheckConstraint(_in("found", CHECK_FINDINGS), name="found"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[str] = mapped_column(ForeignKey("control_lists.id"))
    # The date the document speaks for (the eCFR issue date), and when the check ran.
    as_of: Mapped[date]
    checked_at: Mapped[datetime]
    origin: Mapped[str] = mapped_column(String(32))
    document_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str | None] = mapped_column(String(200))
    # What the check found: `unchanged` (the list agrees with its source) or `differences`
    # (changes to record, which a check never records itself).
    found: Mapped[str] = mapped_column(String(16), default="unchanged", server_default="unchanged")
    note: Mapped[str | None] = mapped_column(Text)


NOTICE_KINDS = ["entry.took_effect", "entry.pending_overdue"]
NOTICE_STATES = ["scheduled", "emitted", "superseded"]


class ScheduledNotice(Base):
    """An event a recorded change owes on a later date: when it takes effect, or when its
    expected effective date passes. Written with the change; the scheduler claims each row
    once (`scheduled` → `emitted`/`superseded`) in the transaction that emits its event."""

    __tablename__ = "scheduled_notices"
    __table_args__ = (
        UniqueConstraint("change_id", "kind"),
        CheckConstraint(_in("kind", NOTICE_KINDS), name="kind"),
        CheckConstraint(_in("state", NOTICE_STATES), name="state"),
        Index(None, "state", "due_on", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("status_changes.id"))
    kind: Mapped[str] = mapped_column(String(32))
    # The day from 00:00 UTC of which the notice is due.
    due_on: Mapped[date]
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    created_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    event_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("events.id"))


class SigningKey(Base):
    """A key that signs receipts. At most one per algorithm is current (not retired); retired keys
    stay, so receipts they signed stay verifiable against the published JWKS."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # The first key is created on first need by whichever process needs it: this index
        # lets exactly one such insert win.
        Index(
            "uq_signing_keys_current_algorithm",
            "algorithm",
            unique=True,
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # RFC 7638 thumbprint of the public key: the JWS header's and the JWKS's `kid`.
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]]
    # PKCS#8 PEM. Needed in the clear to sign; never served.
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]


class Receipt(Base):
    """A signed record of what the service answered for a country: stored as signed, never changed."""

    __tablename__ = "receipts"
    __table_args__ = (Index(None, "country_code", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The public id (rcp_…): random, so one receipt's id tells nothing of another's.
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    issued_at: Mapped[datetime]
    country_code: Mapped[str] = mapped_column(String(2))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    key_name: Mapped[str] = mapped_column(String(100))
    kid: Mapped[str] = mapped_column(ForeignKey("signing_keys.kid"))
    # The JWS payload, as signed, and the compact JWS itself.
    payload: Mapped[dict[str, Any]]
    jws: Mapped[str] = mapped_column(Text)


class WorkerHeartbeat(Base):
    """A webhook worker's last sign of life (`exportctl worker` beats every few seconds, and removes
    its row when it stops): GET /metrics reports each one's age, so a dead worker shows."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
