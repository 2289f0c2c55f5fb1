"""The delivery worker: claim due deliveries, send them concurrently, record what happened.

Claiming is safe with several workers: on PostgreSQL one `UPDATE … WHERE id IN
(SELECT … FOR UPDATE SKIP LOCKED) RETURNING id`; on SQLite, which has no row
locks, a conditional UPDATE per row whose row count says who won. A claim is a
lease: if a worker dies mid-batch its deliveries become claimable again when
the lease expires, so every committed event is delivered at least once.
`run_once()` does one batch synchronously (the tests drive it); `run()` loops.
"""

import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from flask import Flask
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, joinedload

from service import clock, db
from service.domain.events import event_document
from service.models import Delivery, Webhook
from service.webhooks import targets
from service.webhooks.delivery import RESPONSE_EXCERPT, AttemptResult, RetryPolicy, record_attempt
from service.webhooks.signing import signed_headers

log = logging.getLogger(__name__)


def _due(now):
    """Deliveries a worker may take now: pending and due, or abandoned by a worker whose lease ran out."""
    return or_(
        and_(Delivery.state == "pending", Delivery.next_attempt_at <= now),
        and_(Delivery.state == "delivering", Delivery.lease_expires_at < now),
    )


def claim(session: Session, worker: str, *, now, lease: timedelta, limit: int) -> list[int]:
    """Take up to `limit` due deliveries of enabled subscriptions for `worker`; their ids."""
    candidates = (
        select(Delivery.id)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(_due(now), Webhook.enabled.is_(True), Webhook.deleted_at.is_(None))
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    lease_values = {"state": "delivering", "leased_by": worker, "lease_expires_at": now + lease}
    if session.get_bind().dialect.name == "postgresql":
        claimed = session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(candidates.with_for_update(of=Delivery, skip_locked=True).scalar_subquery())
            )
            .values(**lease_values)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        ids = sorted(claimed.scalars())
    else:
        ids = []
        for delivery_id in session.scalars(candidates).all():
            won = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, _due(now))
                .values(**lease_values)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount == 1:
                ids.append(delivery_id)
    session.commit()
    return ids


def _retry_after(response: requests.Response) -> timedelta | None:
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(value) - clock.utcnow()
    except (TypeError, ValueError):
        return None


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class DeliveryWorker:
    def __init__(self, app: Flask, name: str | None = None):
        self.app = app
        config = app.config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = RetryPolicy.from_config(config)
        self.lease = config["WORKER_LEASE"]
        self.batch_size = int(config["WORKER_BATCH_SIZE"])
        self.poll_interval = config["WORKER_POLL_INTERVAL"].total_seconds()
        self.allow_private = bool(config["WEBHOOK_ALLOW_PRIVATE_TARGETS"])
        self.require_https = bool(config["WEBHOOK_REQUIRE_HTTPS"])
        self.http = targets.http_session(config)
        self.executor = ThreadPoolExecutor(
            max_workers=int(config["WORKER_CONCURRENCY"]), thread_name_prefix="deliver"
        )

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.http.close()

    def run_once(self) -> int:
        """Claim one batch, deliver it concurrently, and return how many were attempted."""
        with self.app.app_context(), db.database().sessionmaker() as session:
            ids = claim(session, self.name, now=clock.utcnow(), lease=self.lease, limit=self.batch_size)
        for outcome in self.executor.map(self._deliver, ids):
            if isinstance(outcome, Exception):
                log.error("delivery failed unexpectedly", exc_info=outcome)
        return len(ids)

    def run(self, stop: threading.Event) -> None:
        log.info("webhook worker %s started", self.name)
        while not stop.is_set():
            try:
                attempted = self.run_once()
            except Exception:  # the database may be briefly unreachable: keep going
                log.exception("worker batch failed; retrying")
                attempted = 0
            if attempted == 0:
                stop.wait(self.poll_interval)
        log.info("webhook worker %s stopped", self.name)

    def _deliver(self, delivery_id: int) -> Exception | None:
        try:
            with self.app.app_context(), db.database().sessionmaker() as session:
                delivery = session.get(
                    Delivery, delivery_id, options=[joinedload(Delivery.webhook), joinedload(Delivery.event)]
                )
                if delivery is None or delivery.leased_by != self.name or delivery.state != "delivering":
                    return None
                attempted_at = clock.utcnow()
                result = self._send(delivery, attempted_at)
                if not record_attempt(
                    session, delivery, result, attempted_at=attempted_at, worker=self.name, policy=self.policy
                ):
                    log.warning("delivery %s: lease lost to another worker; attempt logged only", delivery_id)
                session.commit()
        except Exception as exc:  # noqa: BLE001 - reported by run_once; the lease lets it be retried
            return exc
        return None

    def signing_secrets(self, webhook: Webhook, now) -> list[str]:
        secrets = [webhook.secret]
        if (
            webhook.previous_secret
            and webhook.previous_secret_expires_at
            and now < webhook.previous_secret_expires_at
        ):
            secrets.append(webhook.previous_secret)
        return secrets

    def _send(self, delivery: Delivery, attempted_at) -> AttemptResult:
        webhook, event = delivery.webhook, delivery.event
        document = event_document(event)
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        headers = signed_headers(
            self.signing_secrets(webhook, attempted_at), document["id"], attempted_at, body
        )
        started = time.monotonic()
        try:
            targets.check_target(
                webhook.url, allow_private=self.allow_private, require_https=self.require_https
            )
            with self.http.post(
                webhook.url, data=body.encode(), headers=headers, stream=True, allow_redirects=False
            ) as response:
                excerpt = response.raw.read(RESPONSE_EXCERPT, decode_content=True)
                return AttemptResult(
                    http_status=response.status_code,
                    duration_ms=round((time.monotonic() - started) * 1000),
                    response_body=excerpt.decode("utf-8", errors="replace") if excerpt else None,
                    retry_after=_retry_after(response),
                    error=None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}",
                )
        except targets.TargetRejected as exc:
            error = f"target rejected: {exc.reason}"
        except requests.RequestException as exc:
            error = _error_text(exc)
        return AttemptResult(
            http_status=None, duration_ms=round((time.monotonic() - started) * 1000), error=error
        )
