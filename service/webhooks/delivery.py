"""What happens after an attempt: success, a retry on the schedule, or giving up.

2xx is success. Anything else is retried on the Standard Webhooks schedule
(5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h by default) with ±20%
jitter, or after the receiver's Retry-After on 429/503. A 410 disables the
subscription. After the last attempt the delivery is `failed`. A subscription
failing without a single success for WEBHOOK_DISABLE_AFTER (5 days) is
disabled (failures further apart than the longest retry delay start a new
streak, so an old failure cannot count against a fresh one); `webhook.failing`,
`webhook.recovered` and `webhook.disabled` events report each turn. Every
state change is conditional on the worker still holding the delivery's lease,
so a worker that lost it changes nothing.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from service.domain.events import emit
from service.domain.outbox import fan_out
from service.models import Delivery, DeliveryAttempt, Webhook
from service.vocabulary import DeliveryState, EventType

RESPONSE_EXCERPT = 2048


@dataclass(frozen=True)
class AttemptResult:
    http_status: int | None
    duration_ms: int
    error: str | None = None
    response_body: str | None = None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


@dataclass(frozen=True)
class RetryPolicy:
    schedule: list[timedelta]
    jitter: float
    max_retry_after: timedelta
    disable_after: timedelta

    @classmethod
    def from_config(cls, config: Mapping) -> "RetryPolicy":
        return cls(
            schedule=list(config["WEBHOOK_RETRY_SCHEDULE"]),
            jitter=float(config["WEBHOOK_RETRY_JITTER"]),
            max_retry_after=config["WEBHOOK_MAX_RETRY_AFTER"],
            disable_after=config["WEBHOOK_DISABLE_AFTER"],
        )

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    @property
    def streak_gap(self) -> timedelta:
        """Failures further apart than any retry delay are not one continuous streak."""
        longest = max(self.schedule, default=timedelta(0)) * (1 + self.jitter)
        return max(longest, self.max_retry_after) + timedelta(hours=1)

    def delay(self, failed_attempts: int, retry_after: timedelta | None) -> timedelta:
        """How long to wait after the `failed_attempts`-th failure."""
        if retry_after is not None:
            return min(max(retry_after, timedelta(0)), self.max_retry_after)
        base = self.schedule[failed_attempts - 1]
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


def _webhook_event(session: Session, webhook_id: int, type_: EventType, data: dict) -> None:
    """An operational event about a subscription: to it, and to operations subscriptions (see matches)."""
    event = emit(session, type_, {"webhook_id": webhook_id, **data})
    fan_out(session, event)


def _disable(session: Session, ids: list[int], reason: str, now: datetime, *criteria) -> None:
    """Disable those of `ids` still enabled (and matching `criteria`); report each once."""
    if not ids:
        return
    disabled = session.execute(
        update(Webhook)
        .where(Webhook.id.in_(ids), Webhook.enabled.is_(True), *criteria)
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
        .returning(Webhook.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    for webhook_id in sorted(disabled):
        _webhook_event(session, webhook_id, EventType.WEBHOOK_DISABLED, {"reason": reason})


def _note_successes(session: Session, ids: set[int]) -> None:
    if not ids:
        return
    recovered = session.execute(
        update(Webhook)
        .where(Webhook.id.in_(ids), Webhook.failing_since.is_not(None))
        .values(failing_since=None)
        .returning(Webhook.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    for webhook_id in sorted(recovered):
        _webhook_event(session, webhook_id, EventType.WEBHOOK_RECOVERED, {})


def _note_failures(session: Session, ids: set[int], now: datetime, policy: RetryPolicy) -> None:
    """Start (or restart, after a quiet gap) each subscription's failure streak; disable the
    ones whose streak has run for WEBHOOK_DISABLE_AFTER."""
    if not ids:
        return
    started = (
        session.execute(
            update(Webhook)
            .where(
                Webhook.id.in_(ids),
                # A running streak (failing_since set) restarts only after a quiet gap; rows from
                # before last_failed_at existed (NULL) keep theirs.
                or_(Webhook.failing_since.is_(None), Webhook.last_failed_at < now - policy.streak_gap),
            )
            .values(failing_since=now, last_failed_at=now)
            .returning(Webhook.id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    session.execute(
        update(Webhook)
        .where(Webhook.id.in_(ids))
        .values(last_failed_at=now)
        .execution_options(synchronize_session=False)
    )
    for webhook_id in sorted(started):
        _webhook_event(session, webhook_id, EventType.WEBHOOK_FAILING, {"failing_since": _iso(now)})
    days = policy.disable_after.total_seconds() / 86400
    _disable(
        session,
        sorted(ids),
        f"failing continuously for {days:g} days",
        now,
        Webhook.failing_since <= now - policy.disable_after,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class HeldDelivery(Protocol):
    """What recording reads of a delivery: a Delivery, or a row of just these columns."""

    @property
    def id(self) -> int: ...
    @property
    def webhook_id(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def next_attempt_at(self) -> datetime: ...


# The columns recording needs (the worker reads these, not whole Delivery objects).
HELD_COLUMNS = (Delivery.id, Delivery.webhook_id, Delivery.attempts, Delivery.next_attempt_at)


@dataclass(frozen=True)
class Attempt:
    delivery: HeldDelivery
    result: AttemptResult
    attempted_at: datetime


def _next_state(attempt: Attempt, policy: RetryPolicy) -> dict:
    delivery, result, at = attempt.delivery, attempt.result, attempt.attempted_at
    attempts = delivery.attempts  # counted when the delivery was claimed
    values = {
        "b_id": delivery.id,
        "last_status": result.http_status,
        "last_error": result.error,
        "next_attempt_at": delivery.next_attempt_at,
        "completed_at": None,
    }
    if result.succeeded or result.http_status == 410 or attempts >= policy.max_attempts:
        values.update(
            state=DeliveryState.SUCCEEDED if result.succeeded else DeliveryState.FAILED, completed_at=at
        )
    else:
        values.update(
            state=DeliveryState.PENDING, next_attempt_at=at + policy.delay(attempts, result.retry_after)
        )
    return values


def outcome(attempt: Attempt, policy: RetryPolicy) -> str:
    """What the attempt makes of its delivery: succeeded, failed (for good) or pending (a retry)."""
    return str(_next_state(attempt, policy)["state"])


_APPLY = (
    update(Delivery)
    .where(
        Delivery.id == bindparam("b_id"),
        Delivery.state == DeliveryState.DELIVERING,
        Delivery.leased_by == bindparam("b_worker"),
    )
    .values(
        state=bindparam("state"),
        last_status=bindparam("last_status"),
        last_error=bindparam("last_error"),
        next_attempt_at=bindparam("next_attempt_at"),
        completed_at=bindparam("completed_at"),
        leased_by=None,
        lease_expires_at=None,
    )
)


def held_by(session: Session, ids: list[int], worker: str) -> set[int]:
    """Those of `ids` that `worker` still holds, locked until commit."""
    return set(
        session.scalars(
            select(Delivery.id)
            .where(
                Delivery.id.in_(ids),
                Delivery.state == DeliveryState.DELIVERING,
                Delivery.leased_by == worker,
            )
            .with_for_update()
        )
    )


def record_attempts(
    session: Session,
    attempts: list[Attempt],
    *,
    worker: str,
    policy: RetryPolicy,
    held: set[int] | None = None,
) -> set[int]:
    """Log the attempts and move their deliveries on; the ids applied (others had lost their lease).

    One statement moves every delivery (each conditional on the worker still
    holding its lease), one inserts every attempt, and subscriptions' health
    turns (failing, recovered, disabled) are a statement or two per chunk.
    """
    if not attempts:
        return set()
    # Which deliveries this worker still holds, locked until commit (FOR UPDATE on
    # PostgreSQL; the caller's write transaction on SQLite), so the moves below apply
    # to exactly these. `held`: the caller read (and locked) them already, in this transaction.
    if held is None:
        held = held_by(session, [a.delivery.id for a in attempts], worker)
    rows = [{**_next_state(a, policy), "b_worker": worker} for a in attempts if a.delivery.id in held]
    if rows:
        session.connection().execute(_APPLY, rows)
    applied = {row["b_id"] for row in rows}
    # One bulk INSERT (no ORM object per attempt).
    session.execute(
        insert(DeliveryAttempt),
        [
            {
                "delivery_id": a.delivery.id,
                "attempted_at": a.attempted_at,
                "duration_ms": a.result.duration_ms,
                "http_status": a.result.http_status,
                "error": a.result.error,
                "response_body": a.result.response_body,
                "worker": worker,
            }
            for a in attempts
        ],
    )
    done = [a for a in attempts if a.delivery.id in applied]
    now = max(a.attempted_at for a in attempts)
    _note_successes(session, {a.delivery.webhook_id for a in done if a.result.succeeded})
    gone = sorted({a.delivery.webhook_id for a in done if a.result.http_status == 410})
    _disable(session, gone, "the receiver answered 410 Gone", now)
    failed = {a.delivery.webhook_id for a in done if not a.result.succeeded and a.result.http_status != 410}
    _note_failures(session, failed - set(gone), now, policy)
    return applied
