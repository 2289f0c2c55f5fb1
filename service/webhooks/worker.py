"""The delivery worker: claim due deliveries, send them concurrently, record what happened.

Claiming is safe with several workers: one `UPDATE … WHERE id IN (SELECT …) AND <due>
RETURNING id`, the SELECT `FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite, which has
no row locks, the statement runs under the database's single write lock and the repeated
<due> condition makes each row's claim conditional. A claim is a
short lease that a heartbeat renews while the worker is alive and sending: if
the worker dies (kill -9), its deliveries become claimable again within one
lease (15 s by default), so every committed event is delivered at least once.
A fault of one delivery (its event cannot be serialised, its secret cannot sign,
its receiver fails) is that delivery's failed attempt, never the batch's.
`run_once()` does one batch synchronously (the tests drive it); `run()` loops.
"""

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from flask import Flask
from sqlalchemy import ColumnElement, Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from service import clock, db
from service.domain import freshness, schedule
from service.domain.events import event_document
from service.domain.outbox import WAKE_CHANNEL
from service.metrics import WorkerMetrics
from service.models import Delivery, Event, Webhook
from service.vocabulary import DeliveryState
from service.webhooks import heartbeats, targets
from service.webhooks.delivery import (
    HELD_COLUMNS,
    RESPONSE_EXCERPT,
    Attempt,
    AttemptResult,
    RetryPolicy,
    outcome,
    record_attempts,
)
from service.webhooks.signing import signed_headers

log = logging.getLogger(__name__)


def _due(now, max_attempts: int):
    """Deliveries a worker may take now: pending and due, or abandoned by a worker whose lease
    ran out (while attempts remain: a send that keeps outliving its lease is not retried forever)."""
    return or_(
        and_(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now),
        and_(
            Delivery.state == DeliveryState.DELIVERING,
            Delivery.lease_expires_at < now,
            Delivery.attempts < max_attempts,
        ),
    )


def give_up_abandoned(session: Session, *, now, max_attempts: int) -> None:
    """Fail deliveries whose last attempt's worker vanished: no attempt is left to retry with."""
    session.execute(
        update(Delivery)
        .where(
            Delivery.state == DeliveryState.DELIVERING,
            Delivery.lease_expires_at < now,
            Delivery.attempts >= max_attempts,
        )
        .values(
            state=DeliveryState.FAILED,
            completed_at=now,
            leased_by=None,
            lease_expires_at=None,
            last_error="no attempts left: the last attempt's worker did not finish it within its lease",
        )
        .execution_options(synchronize_session=False)
    )


def claim(
    session: Session,
    worker: str,
    *,
    now,
    lease: timedelta,
    limit: int,
    max_attempts: int,
    abandoned: bool = True,
) -> list[int]:
    """Take up to `limit` due deliveries of enabled subscriptions for `worker`; their ids.

    `abandoned`: also those whose worker's lease ran out (and fail those with no attempt
    left). Without it only pending ones, which an index hands over in order: a fan-out's
    later batches then cost a few rows each, not a sort of everything still due.
    """
    if abandoned:
        give_up_abandoned(session, now=now, max_attempts=max_attempts)
    due = (
        _due(now, max_attempts)
        if abandoned
        else and_(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now)
    )
    candidates = (
        select(Delivery.id)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(due, Webhook.enabled.is_(True), Webhook.deleted_at.is_(None))
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    # Claiming counts as an attempt: a send that outlives its lease (and is taken over)
    # still uses one up, so no delivery can be retried forever.
    lease_values = {
        "state": DeliveryState.DELIVERING,
        "leased_by": worker,
        "lease_expires_at": now + lease,
        "attempts": Delivery.attempts + 1,
    }
    claimable: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        # The rows the subquery locks are the claim (SKIP LOCKED: another worker's are passed
        # over). No condition outside it: the planner could then run it more than once.
        claimable = Delivery.id.in_(
            candidates.with_for_update(of=Delivery, skip_locked=True).scalar_subquery()
        )
    else:
        # SQLite has no row locks, but runs one writer at a time and this UPDATE is atomic
        # under its write lock; `_due` again makes each row's claim conditional all the same.
        claimable = and_(Delivery.id.in_(candidates.scalar_subquery()), due)
    # One statement on both databases.
    claimed = session.execute(
        update(Delivery)
        .where(claimable)
        .values(**lease_values)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(claimed.scalars())
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


@dataclass(frozen=True)
class Job:
    """What one send needs, read from the database before any HTTP starts.

    `error`: why the delivery could not even be prepared (its attempt fails with it).
    """

    delivery_id: int
    url: str
    body: bytes = b""
    message_id: str = ""
    secrets: tuple[str, ...] = ()
    error: str | None = None


class Held:
    """The deliveries this worker has claimed and not yet recorded: the ones whose leases
    the heartbeat renews (the sending threads and the recording thread share it)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def add(self, ids: list[int]) -> None:
        with self._lock:
            self._ids.update(ids)

    def discard(self, ids: list[int]) -> None:
        with self._lock:
            self._ids.difference_update(ids)

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)


class Heartbeat:
    """Renews the leases of what is being sent, from a thread of its own.

    The lease can then be short (a dead worker's deliveries are free again soon) while a
    live worker keeps them for as long as its sends take.
    """

    def __init__(self, worker: "DeliveryWorker", held: Held):
        self.worker = worker
        self.held = held
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        """Once, when the first batch is claimed (nothing to renew before)."""
        if not self.thread.is_alive() and not self.stop.is_set():
            self.thread.start()

    def __enter__(self) -> "Heartbeat":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _beat(self) -> None:
        interval = self.worker.lease.total_seconds() / 3
        while not self.stop.wait(interval):
            ids = self.held.ids()
            if not ids:
                continue
            try:
                self.worker.renew(ids)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease; try again
                log.warning("could not renew the leases of %d deliveries", len(ids), exc_info=True)


class Wake:
    """Wakes an idle worker when deliveries are committed, so the first delivery leaves within
    milliseconds of the commit rather than at the next poll, on a connection of its own:

    - PostgreSQL: LISTEN (the writers NOTIFY in their transaction, see outbox.wake_workers);
    - SQLite: `PRAGMA data_version`, which moves when another connection commits, read every
      SQLITE_WATCH seconds (a read of a number in the database's header, no query plan and no
      disk: ~100 a second while idle cost nothing to speak of). Any commit wakes the worker;
      one that queued nothing costs it one claim that finds nothing.

    Without it (the connection lost) the worker polls every poll interval, as before.
    """

    SQLITE_WATCH = 0.01  # seconds

    def __init__(self, engine: Engine):
        self.engine = engine
        self.connection: Any = None
        self.seen: int | None = None  # SQLite: the data_version last seen

    def listen(self) -> None:
        if self.connection is not None:
            return
        if self.engine.dialect.name == "sqlite":
            self._watch_sqlite()
            return
        if self.engine.dialect.name != "postgresql":
            return
        try:
            proxy = self.engine.raw_connection()
            proxy.detach()  # the worker's for its life, not the pool's
            connection: Any = proxy.dbapi_connection
            connection.rollback()
            connection.autocommit = True
            connection.execute(f"LISTEN {WAKE_CHANNEL}")
            self.connection = connection
        except Exception:  # noqa: BLE001 - polling still delivers everything
            log.warning("cannot LISTEN for new deliveries; polling instead", exc_info=True)

    def _watch_sqlite(self) -> None:
        try:
            proxy = self.engine.raw_connection()
            proxy.detach()  # the worker's for its life, not the pool's
            self.connection = proxy.dbapi_connection
            self.seen = self._data_version()
        except Exception:  # noqa: BLE001 - polling still delivers everything
            log.warning("cannot watch the database for new deliveries; polling instead", exc_info=True)
            self.close()

    def _data_version(self) -> int:
        version: int = self.connection.execute("PRAGMA data_version").fetchone()[0]
        return version

    def _wait_sqlite(self, stop: threading.Event, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set():
                version = self._data_version()
                if version != self.seen:
                    self.seen = version
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                stop.wait(min(self.SQLITE_WATCH, remaining))
        except Exception:  # noqa: BLE001 - the database went away: watch again on the next wait
            log.warning(
                "lost the connection watching for deliveries; polling until it is back", exc_info=True
            )
            self.close()
            stop.wait(max(0.0, deadline - time.monotonic()))

    def wait(self, stop: threading.Event, timeout: float) -> None:
        """Until a commit is seen (a NOTIFY, or SQLite's data version moving), `timeout` passes
        or the worker is stopped."""
        self.listen()
        if self.connection is None:
            stop.wait(timeout)
            return
        if self.engine.dialect.name == "sqlite":
            self._wait_sqlite(stop, timeout)
            return
        try:
            for _notice in self.connection.notifies(timeout=timeout, stop_after=1):
                pass
        except Exception:  # noqa: BLE001 - the server went away: listen again on the next wait
            log.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.close()
            stop.wait(timeout)

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


class DeliveryWorker:
    """Claims a batch, sends it on a thread pool, and records results as they come in.

    The threads only do HTTP; the database work (claiming, loading, recording) is
    done by the calling thread, a chunk of results per transaction, so SQLite's
    single writer is never contended by the worker's own threads.
    """

    RECORD_CHUNK = 64  # a transaction per 64 results: on PostgreSQL each is ~6 round trips
    KEPT_BODIES = 64
    STALE_CHECK_EVERY = timedelta(minutes=1)

    def __init__(self, app: Flask, name: str | None = None):
        self.app = app
        config = app.config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = RetryPolicy.from_config(config)
        self.batch_size = int(config["WORKER_BATCH_SIZE"])
        self.concurrency = int(config["WORKER_CONCURRENCY"])
        self.read_timeout = config["WEBHOOK_READ_TIMEOUT"].total_seconds()
        # Short: a heartbeat renews it every third of it while the batch is being sent.
        self.lease = config["WORKER_LEASE"]
        self.poll_interval = config["WORKER_POLL_INTERVAL"].total_seconds()
        self.allow_private = bool(config["WEBHOOK_ALLOW_PRIVATE_TARGETS"])
        self.require_https = bool(config["WEBHOOK_REQUIRE_HTTPS"])
        self.http = targets.http_session(config)
        self.executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="deliver")
        self._stale_checked_at: datetime | None = None
        self.metrics = WorkerMetrics(app, self.name)
        self.started_at = clock.utcnow()
        self._beaten_at: float | None = None
        self._scheduled_at = float("-inf")
        # Serialised event bodies by event id (events never change), the most recent kept.
        self._bodies: OrderedDict[int, tuple[bytes, str]] = OrderedDict()
        with app.app_context():
            self.wake = Wake(db.database().engine)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.http.close()
        self.wake.close()

    def run_scheduled(self, now: datetime | None = None) -> schedule.ScheduleRun:
        """Emit the events that fall due by `now` (changes taking effect, pending statuses overdue,
        lists turning stale), queued for delivery like any other."""
        now = now or clock.utcnow()
        with self.app.app_context():
            result = schedule.run_due(db.database().sessionmaker, now, begin_write=db.begin_write)
            # Staleness moves by days: looking once a minute is plenty (and spares the idle poll).
            if self._stale_checked_at is None or now - self._stale_checked_at >= self.STALE_CHECK_EVERY:
                freshness.emit_stale(
                    db.database().sessionmaker, self.app.config, now, begin_write=db.begin_write
                )
                self._stale_checked_at = now
            return result

    def run_once(self, *, scheduled: bool = True) -> int:
        """Emit what fell due (unless `scheduled` is false), then claim one batch, deliver it
        concurrently, and return how many deliveries were attempted."""
        if scheduled:
            self._run_scheduled_safely()
        return self.deliver(batches=1)

    def _run_scheduled_safely(self) -> None:
        self._scheduled_at = time.monotonic()
        try:
            self.run_scheduled()
        except Exception:  # noqa: BLE001 - deliveries go on; the schedule is retried next batch
            log.exception("scheduled events failed; retrying next batch")

    def deliver(self, stop: threading.Event | None = None, *, batches: int | None = None) -> int:
        """Claim, send and record until nothing is due (or `batches` batches are claimed, or
        `stop` is set); how many deliveries were attempted.

        The next batch is claimed while the last is still being sent, as soon as no more than a
        batch is left to send, so the threads never wait for the database between batches;
        results are recorded a chunk per transaction as they come in, and at least once a poll
        interval, when the worker also looks for new deliveries again: a slow receiver holds up
        no other. Scheduled events are
        looked for here, once a poll interval (with `stop`, as in `run`: a fan-out keeps the
        loop from its poll for as long as it lasts).
        """
        held = Held()
        attempted = claimed_batches = in_flight = 0
        swept = time.monotonic()
        finished: queue.SimpleQueue[Future[tuple[Job, datetime, AttemptResult]]] = queue.SimpleQueue()
        results: list[tuple[Job, datetime, AttemptResult]] = []
        exhausted = False
        with Heartbeat(self, held) as heartbeat:
            while True:
                if (
                    not exhausted
                    and in_flight <= self.batch_size
                    and (batches is None or claimed_batches < batches)
                    and not (stop is not None and stop.is_set())
                ):
                    # Abandoned deliveries (a dead worker's) on the first claim, then once a
                    # poll interval: they are a lease late already, and looking costs a sort.
                    abandoned = claimed_batches == 0 or time.monotonic() - swept >= self.poll_interval
                    if abandoned:
                        swept = time.monotonic()
                    try:
                        ids, jobs = self._claim_jobs(abandoned=abandoned)
                    except Exception:  # noqa: BLE001 - what is in flight is still recorded
                        if not in_flight:
                            raise
                        log.exception("claiming a batch failed; finishing the deliveries in flight")
                        ids, jobs = [], []
                    claimed_batches += 1
                    exhausted = not ids
                    if ids:
                        held.add(ids)
                        heartbeat.start()
                        attempted += len(ids)
                        in_flight += len(jobs)
                        for job in jobs:
                            self.executor.submit(self._send, job).add_done_callback(finished.put)
                    # After the claim, while its sends go out: a delivery committed while the
                    # worker waited leaves first, and what this emits is claimed next.
                    if stop is not None and time.monotonic() - self._scheduled_at >= self.poll_interval:
                        self._run_scheduled_safely()
                if not in_flight:
                    break
                try:
                    # Not longer than a poll interval: a slow receiver must hold up neither the
                    # deliveries committed meanwhile nor the recording of those that came back.
                    done = finished.get(timeout=self.poll_interval)
                except queue.Empty:
                    exhausted = False  # look for new deliveries again, the threads are free
                    if results:
                        self._record(results)
                        held.discard([job.delivery_id for job, _, _ in results])
                        results = []
                    continue
                results.append(done.result())
                in_flight -= 1
                if len(results) >= self.RECORD_CHUNK or not in_flight:
                    self._record(results)
                    held.discard([job.delivery_id for job, _, _ in results])
                    results = []
        return attempted

    def _claim_jobs(self, *, abandoned: bool = True) -> tuple[list[int], list[Job]]:
        """Claim a batch and read what its sends need, in one short session."""
        with self.app.app_context(), db.database().sessionmaker() as session:
            now = clock.utcnow()
            started = time.monotonic()
            ids = claim(
                session,
                self.name,
                now=now,
                lease=self.lease,
                limit=self.batch_size,
                max_attempts=self.policy.max_attempts,
                abandoned=abandoned,
            )
            jobs = self._jobs(session, ids, now)
        self._claimed(ids, started)
        return ids, jobs

    def _heartbeat(self) -> None:
        """Note in the database that this worker is alive, every third of a lease at most."""
        self.metrics.beat()
        if (
            self._beaten_at is not None
            and time.monotonic() - self._beaten_at < self.lease.total_seconds() / 3
        ):
            return
        try:
            with self.app.app_context(), db.database().sessionmaker() as session:
                db.begin_write(session)
                heartbeats.beat(session, self.name, started_at=self.started_at, now=clock.utcnow())
                session.commit()
            self._beaten_at = time.monotonic()
        except Exception:  # noqa: BLE001 - a missed heartbeat only makes the worker look older
            log.warning("could not record the heartbeat of worker %s", self.name, exc_info=True)

    def _forget_heartbeat(self) -> None:
        try:
            with self.app.app_context(), db.database().sessionmaker() as session:
                db.begin_write(session)
                heartbeats.forget(session, self.name)
                session.commit()
        except Exception:  # noqa: BLE001 - the row ages out on its own
            log.warning("could not remove the heartbeat of worker %s", self.name, exc_info=True)

    def _claimed(self, ids: list[int], started: float) -> None:
        self._heartbeat()
        if not ids:
            return
        duration = time.monotonic() - started
        self.metrics.claimed(len(ids), duration)
        log.info(
            "claimed %d deliveries",
            len(ids),
            extra={
                "kind": "claim",
                "worker": self.name,
                "delivery_ids": ids,
                "duration_ms": round(duration * 1000, 1),
            },
        )

    def renew(self, ids: list[int]) -> None:
        """Extend this worker's leases on `ids` (those it still holds) by one lease from now."""
        with self.app.app_context(), db.database().sessionmaker() as session:
            db.begin_write(session)
            session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_(ids),
                    Delivery.state == DeliveryState.DELIVERING,
                    Delivery.leased_by == self.name,
                )
                .values(lease_expires_at=clock.utcnow() + self.lease)
                .execution_options(synchronize_session=False)
            )
            session.commit()

    def run(self, stop: threading.Event) -> None:
        log.info("webhook worker %s started", self.name)
        self.wake.listen()  # before the first claim: no commit after it goes unnoticed
        while not stop.is_set():
            # Scheduled events are days apart: `deliver` looks for them once a poll interval,
            # busy or idle, not before every batch (a query per batch is a tenth of a fan-out's
            # database time).
            try:
                attempted = self.deliver(stop)
            except Exception:  # the database may be briefly unreachable: keep going
                log.exception("worker batch failed; retrying")
                attempted = 0
            if attempted == 0:
                self.wake.wait(stop, self.poll_interval)
        self._forget_heartbeat()
        log.info("webhook worker %s stopped", self.name)

    def _jobs(self, session: Session, ids: list[int], now: datetime) -> list[Job]:
        """What the sends of `ids` need: the columns they use (no ORM objects), and each event
        serialised once, however many deliveries carry it (a fan-out is one event to every
        subscription, over many batches: events never change, so their bodies are kept)."""
        if not ids:
            return []
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.event_id,
                Webhook.url,
                Webhook.secret,
                Webhook.previous_secret,
                Webhook.previous_secret_expires_at,
            )
            .join(Webhook, Webhook.id == Delivery.webhook_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
        # The kept bodies this batch needs are taken first: keeping the new ones below may
        # evict kept ones (a batch can hold more events than are kept).
        bodies: dict[int, tuple[bytes, str] | Exception] = {}
        for event_id in {row.event_id for row in rows}:
            kept = self._bodies.get(event_id)
            if kept is not None:
                bodies[event_id] = kept
                self._bodies.move_to_end(event_id)
        missing = {row.event_id for row in rows} - bodies.keys()
        if missing:
            for event in session.scalars(select(Event).where(Event.id.in_(missing))):
                found = bodies[event.id] = self._serialise(event)
                if isinstance(found, tuple):
                    self._bodies[event.id] = found
                    while len(self._bodies) > self.KEPT_BODIES:
                        self._bodies.popitem(last=False)
        return [self._job(row, now, bodies) for row in rows]

    @staticmethod
    def _serialise(event: Event) -> tuple[bytes, str] | Exception:
        """The event's body and message id (or why it cannot be serialised)."""
        try:
            document = event_document(event)
            body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
            return body, document["id"]
        except Exception as exc:  # noqa: BLE001 - kept: every delivery of the event fails alike
            return exc

    def _job(self, row: Any, now: datetime, bodies: dict[int, tuple[bytes, str] | Exception]) -> Job:
        """What the send needs; a delivery whose event cannot be serialised fails alone."""
        found = bodies.get(row.event_id) or LookupError(f"event {row.event_id} not found")
        if isinstance(found, Exception):
            log.warning("delivery %s: its event cannot be serialised", row.id, exc_info=found)
            return Job(row.id, row.url, error=f"event cannot be serialised: {_error_text(found)}")
        body, message_id = found
        secrets = [row.secret]
        if row.previous_secret and row.previous_secret_expires_at and now < row.previous_secret_expires_at:
            secrets.append(row.previous_secret)
        return Job(delivery_id=row.id, url=row.url, body=body, message_id=message_id, secrets=tuple(secrets))

    def _send(self, job: Job) -> tuple[Job, datetime, AttemptResult]:
        """One HTTP attempt (runs on the pool). Never raises: failures are results."""
        attempted_at = clock.utcnow()
        started = time.monotonic()
        if job.error:
            return job, attempted_at, AttemptResult(http_status=None, duration_ms=0, error=job.error)
        try:
            headers = signed_headers(list(job.secrets), job.message_id, attempted_at, job.body.decode())
        except Exception as exc:  # noqa: BLE001 - a secret that cannot sign fails this delivery only
            log.warning("delivery %s: cannot be signed", job.delivery_id, exc_info=True)
            return job, attempted_at, AttemptResult(None, 0, error=f"cannot sign: {_error_text(exc)}")
        try:
            targets.check_target(job.url, allow_private=self.allow_private, require_https=self.require_https)
            with self.http.post(
                job.url, data=job.body, headers=headers, stream=True, allow_redirects=False
            ) as response:
                excerpt = self._excerpt(response, started)
                result = AttemptResult(
                    http_status=response.status_code,
                    duration_ms=round((time.monotonic() - started) * 1000),
                    response_body=excerpt.decode("utf-8", errors="replace") if excerpt else None,
                    retry_after=_retry_after(response),
                    error=None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}",
                )
                return job, attempted_at, result
        except targets.TargetRejected as exc:
            error = f"target rejected: {exc.reason}"
        except targets.InvalidIPAddress as exc:  # re-resolved to a blocked address at connect time
            error = f"target rejected: resolves to a non-public address ({exc})"
        except Exception as exc:  # noqa: BLE001 - any transport failure is a failed attempt
            error = _error_text(exc)
        elapsed = round((time.monotonic() - started) * 1000)
        return job, attempted_at, AttemptResult(http_status=None, duration_ms=elapsed, error=error)

    def _excerpt(self, response: requests.Response, started: float) -> bytes:
        """Up to 2 KiB of the body, within one read timeout of the send's start, however slowly
        the receiver trickles it (each read1 waits at most one read timeout for some bytes)."""
        deadline = started + self.read_timeout
        excerpt = b""
        while len(excerpt) < RESPONSE_EXCERPT and time.monotonic() < deadline:
            # Raw bytes (identity encoding was asked for): a compressed body could make a
            # decoding read wait for output the deadline never sees.
            chunk = response.raw.read1(RESPONSE_EXCERPT - len(excerpt), decode_content=False)
            if not chunk:
                break
            excerpt += chunk
        return excerpt

    def _record(self, results: list[tuple[Job, datetime, AttemptResult]]) -> None:
        """Record a chunk of attempts in one transaction; if that fails, each on its own, so
        one delivery's failure to be recorded leaves the others' results standing."""
        try:
            self._record_chunk(results)
        except Exception:  # noqa: BLE001
            if len(results) == 1:
                log.exception("delivery %s: could not record its attempt", results[0][0].delivery_id)
                return
            log.warning(
                "recording %d attempts failed; recording them one by one", len(results), exc_info=True
            )
            for result in results:
                self._record([result])

    def _record_chunk(self, results: list[tuple[Job, datetime, AttemptResult]]) -> None:
        with self.app.app_context(), db.database().sessionmaker() as session:
            db.begin_write(session)
            # One read, locked until commit: the deliveries' own columns (recording needs no
            # subscription or event) and which of them this worker still holds.
            rows = session.execute(
                select(*HELD_COLUMNS, Delivery.state, Delivery.leased_by)
                .where(Delivery.id.in_([job.delivery_id for job, _, _ in results]))
                .with_for_update()
            ).all()
            deliveries = {row.id: row for row in rows}
            held = {
                row.id for row in rows if row.state == DeliveryState.DELIVERING and row.leased_by == self.name
            }
            attempts = [
                Attempt(deliveries[job.delivery_id], result, attempted_at)
                for job, attempted_at, result in results
                if job.delivery_id in deliveries
            ]
            applied = record_attempts(session, attempts, worker=self.name, policy=self.policy, held=held)
            told = [
                (a, outcome(a, self.policy) if a.delivery.id in applied else "lease_lost") for a in attempts
            ]
            session.commit()
        event_ids = {job.delivery_id: job.message_id for job, _, _ in results}
        for attempt, result in told:
            self._attempted(attempt, result, event_ids[attempt.delivery.id])
        for job, _, _ in results:
            if job.delivery_id not in applied:
                log.warning(
                    "delivery %s: attempt not applied: its lease passed to another worker, or the "
                    "delivery is gone (its subscription deleted)",
                    job.delivery_id,
                )

    def _attempted(self, attempt: Attempt, result: str, event_id: str) -> None:
        """One log line and the metrics of a recorded attempt: ids, outcome, duration; never the
        receiver's URL (it may carry a token) nor the error's text (it may quote the URL)."""
        delivery, sent = attempt.delivery, attempt.result
        self.metrics.attempted(result, sent.duration_ms / 1000)
        log.info(
            "delivery %s attempt %s: %s",
            delivery.id,
            delivery.attempts,
            result,
            extra={
                "kind": "attempt",
                "worker": self.name,
                "delivery_id": delivery.id,
                "event_id": event_id or None,
                "webhook_id": delivery.webhook_id,
                "attempt": delivery.attempts,
                "outcome": result,
                "http_status": sent.http_status,
                "error": sent.error.partition(":")[0] if sent.error else None,
                "duration_ms": sent.duration_ms,
            },
        )
