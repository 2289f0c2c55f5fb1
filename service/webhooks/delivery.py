"""What happens after an attempt: success, a retry on the schedule, or giving up.

2xx is success. Anything else is retried on the Standard Webhooks schedule
(5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h by default) with ±20%
jitter, or after the receiver's Retry-After on 429/503. A 410 disables the
subscription. After the last attempt the delivery is `failed`. A subscription
failing without a single success for WEBHOOK_DISABLE_AFTER (5 days) is
disabled; `webhook.failing`, `webhook.recovered` and `webhook.disabled` events
report each turn. Every state change is conditional on the worker still
holding the delivery's lease, so a worker that lost it changes nothing.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.domain.events import EventType, emit
from service.models import Delivery, DeliveryAttempt, Webhook
from service.webhooks.fanout import fan_out

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

    def delay(self, failed_attempts: int, retry_after: timedelta | None) -> timedelta:
        """How long to wait after the `failed_attempts`-th failure."""
        if retry_after is not None:
            return min(max(retry_after, timedelta(0)), self.max_retry_after)
        base = self.schedule[failed_attempts - 1]
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


def _webhook_event(session: Session, webhook: Webhook, type_: EventType, data: dict) -> None:
    """An operational event about a subscription, sent to the others (never to itself)."""
    event = emit(session, type_, {"webhook_id": webhook.id, **data})
    fan_out(session, event, exclude_webhook_id=webhook.id)


def disable_webhook(session: Session, webhook: Webhook, reason: str, now: datetime) -> None:
    disabled = session.execute(
        update(Webhook)
        .where(Webhook.id == webhook.id, Webhook.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if disabled.rowcount == 1:
        _webhook_event(session, webhook, EventType.WEBHOOK_DISABLED, {"reason": reason})


def _note_failure(session: Session, webhook: Webhook, now: datetime, policy: RetryPolicy) -> None:
    started = session.execute(
        update(Webhook)
        .where(Webhook.id == webhook.id, Webhook.failing_since.is_(None))
        .values(failing_since=now)
        .execution_options(synchronize_session=False)
    )
    if started.rowcount == 1:
        _webhook_event(session, webhook, EventType.WEBHOOK_FAILING, {"failing_since": _iso(now)})
        return
    session.refresh(webhook, ["failing_since"])
    if webhook.failing_since is not None and now - webhook.failing_since >= policy.disable_after:
        days = policy.disable_after.total_seconds() / 86400
        disable_webhook(session, webhook, f"failing continuously for {days:g} days", now)


def _note_success(session: Session, webhook: Webhook) -> None:
    recovered = session.execute(
        update(Webhook)
        .where(Webhook.id == webhook.id, Webhook.failing_since.is_not(None))
        .values(failing_since=None)
        .execution_options(synchronize_session=False)
    )
    if recovered.rowcount == 1:
        _webhook_event(session, webhook, EventType.WEBHOOK_RECOVERED, {})


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def record_attempt(
    session: Session,
    delivery: Delivery,
    result: AttemptResult,
    *,
    attempted_at: datetime,
    worker: str,
    policy: RetryPolicy,
) -> bool:
    """Log the attempt and move the delivery on. False if the worker had lost its lease."""
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            attempted_at=attempted_at,
            duration_ms=result.duration_ms,
            http_status=result.http_status,
            error=result.error,
            response_body=result.response_body,
            worker=worker,
        )
    )
    attempts = delivery.attempts + 1
    values: dict = {
        "attempts": attempts,
        "last_status": result.http_status,
        "last_error": result.error,
        "leased_by": None,
        "lease_expires_at": None,
    }
    if result.succeeded:
        values.update(state="succeeded", completed_at=attempted_at)
    elif result.http_status == 410 or attempts >= policy.max_attempts:
        values.update(state="failed", completed_at=attempted_at)
    else:
        values.update(
            state="pending", next_attempt_at=attempted_at + policy.delay(attempts, result.retry_after)
        )
    moved = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.state == "delivering", Delivery.leased_by == worker)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        return False
    webhook = delivery.webhook
    if result.succeeded:
        _note_success(session, webhook)
    elif result.http_status == 410:
        disable_webhook(session, webhook, "the receiver answered 410 Gone", attempted_at)
    else:
        _note_failure(session, webhook, attempted_at, policy)
    return True
