"""Prometheus metrics (prometheus_client) at GET /metrics.

Per process: requests by route and status with latency histograms, and the
document cache's hits and misses. From the database at scrape time (so every
API process reports the same truth, with no multiprocess files): webhook
deliveries by state, the queue depth and the delivery lag. Off with
EXPORTCTL_METRICS=false; EXPORTCTL_METRICS_TOKEN requires `Authorization: Bearer <token>`.
"""

import hmac
import time
from typing import Any

from flask import Flask, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from service import clock, logs
from service.errors import Unauthorized


class DeliveryCollector:
    """Delivery states, queue depth and lag, read from the outbox when scraped."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from service import db
        from service.models import Delivery
        from service.webhooks import heartbeats

        with self.app.app_context(), db.database().sessionmaker() as session:
            beats = heartbeats.ages(session, clock.utcnow())
            states = session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
            now = clock.utcnow()
            due = session.execute(
                select(func.count(), func.min(Delivery.next_attempt_at)).where(
                    Delivery.state == "pending", Delivery.next_attempt_at <= now
                )
            ).one()
        by_state = GaugeMetricFamily(
            "exportctl_webhook_deliveries", "Webhook deliveries by state (outcome)", labels=["state"]
        )
        for state, count in states:
            by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily(
            "exportctl_webhook_queue_depth", "Deliveries due now and not yet made", value=due[0]
        )
        oldest = due[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        yield GaugeMetricFamily(
            "exportctl_webhook_delivery_lag_seconds",
            "How long the oldest due delivery has waited",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        ages = GaugeMetricFamily(
            "exportctl_worker_heartbeat_age_seconds",
            "Seconds since each webhook worker seen in the last day last went round its loop",
            labels=["worker"],
        )
        for name, age in beats:
            ages.add_metric([name], age)
        yield ages
        yield GaugeMetricFamily(
            "exportctl_workers_alive",
            "Webhook workers heard from within the last minute (alert when below the number you run)",
            value=sum(1 for _name, age in beats if age < heartbeats.ALIVE_WITHIN.total_seconds()),
        )


class Metrics:
    def __init__(self, app: Flask):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "exportctl_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "exportctl_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
        )
        self.cache = Counter(
            "exportctl_document_cache_lookups",
            "Rendered-document cache lookups",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(DeliveryCollector(app))
        # The series of each (method, route, status) seen, looked up once: `labels()` takes a
        # lock and builds a key on every call, on every request. Bounded: routes are the app's.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._cache_results = {hit: self.cache.labels("hit" if hit else "miss") for hit in (True, False)}

    def observe_cache_lookup(self, *, hit: bool) -> None:
        self._cache_results[hit].inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(seconds)


class WorkerMetrics:
    """The webhook worker's own metrics (`exportctl worker`, served on EXPORTCTL_WORKER_METRICS_PORT):
    claims, attempts by outcome, and the queue depth, lag and heartbeats read from the database."""

    def __init__(self, app: Flask, worker: str):
        self.registry = CollectorRegistry()
        self.claims = Counter(
            "exportctl_worker_claims", "Batches claimed (with a delivery or more)", registry=self.registry
        )
        self.claimed_deliveries = Counter(
            "exportctl_worker_claimed_deliveries", "Deliveries claimed", registry=self.registry
        )
        self.claim_duration = Histogram(
            "exportctl_worker_claim_duration_seconds",
            "Time to claim and load a batch",
            registry=self.registry,
        )
        self.attempts = Counter(
            "exportctl_worker_attempts",
            "Delivery attempts recorded, by outcome (succeeded, pending: retried later, failed, lease_lost)",
            ["outcome"],
            registry=self.registry,
        )
        self.attempt_duration = Histogram(
            "exportctl_worker_attempt_duration_seconds",
            "Time of one HTTP delivery attempt",
            registry=self.registry,
        )
        self.heartbeat = Gauge(
            "exportctl_worker_heartbeat_timestamp_seconds",
            "When this worker last went round its loop (Unix time)",
            registry=self.registry,
        )
        self.info = Gauge("exportctl_worker_info", "This worker's name", ["worker"], registry=self.registry)
        self.info.labels(worker).set(1)
        self.registry.register(DeliveryCollector(app))

    def beat(self) -> None:
        self.heartbeat.set_to_current_time()

    def claimed(self, count: int, seconds: float) -> None:
        self.claims.inc()
        self.claimed_deliveries.inc(count)
        self.claim_duration.observe(seconds)

    def attempted(self, outcome: str, seconds: float) -> None:
        self.attempts.labels(outcome).inc()
        self.attempt_duration.observe(seconds)

    def serve(self, host: str, port: int):
        """Serve these metrics over HTTP from a thread (prometheus_client's own server)."""
        return start_http_server(port, addr=host, registry=self.registry)


def init_app(app: Flask) -> None:
    if not app.config["METRICS"]:
        return
    app.extensions["exportctl.metrics"] = Metrics(app)
    app.after_request(_count_request)
    app.add_url_rule("/metrics", "metrics", _serve_metrics)


def cache_lookup(hit: bool) -> None:
    """Count one document-cache lookup (called by the cache; a no-op when metrics are off)."""
    metrics: Metrics | None = current_app.extensions.get("exportctl.metrics")
    if metrics is not None:
        metrics.observe_cache_lookup(hit=hit)


def _count_request(response):
    started = logs.request_started()
    current = request._get_current_object()  # type: ignore[attr-defined]  # a proxy: look it up once
    if started is None or current.endpoint == "metrics":
        return response
    metrics: Metrics = current_app.extensions["exportctl.metrics"]
    rule = current.url_rule
    route = rule.rule if rule is not None else "unmatched"
    metrics.observe_request(current.method, route, response.status_code, time.perf_counter() - started)
    return response


def _serve_metrics():
    token = current_app.config["METRICS_TOKEN"]
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized(
                "Send the metrics token as `Authorization: Bearer <token>`.",
                headers={"WWW-Authenticate": 'Bearer realm="exportctl-metrics"'},
            )
    metrics: Metrics = current_app.extensions["exportctl.metrics"]
    return current_app.response_class(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)
