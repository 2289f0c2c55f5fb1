"""The worker's own metrics (claims, attempts by outcome, heartbeat) and its heartbeat in the database,
which the API's /metrics reports as an age per worker."""

import threading

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from service import db
from service.models import WorkerHeartbeat
from tests.conftest import a_change
from tests.live import free_port
from tests.webhooks.conftest import subscribe

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def parse(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_worker_counts_claims_and_attempts_by_outcome(client, editor, receiver, worker):
    receiver.expect_request("/ok").respond_with_data("ok")
    receiver.expect_request("/fail").respond_with_data("no", status=500)
    subscribe(client, editor, receiver.url_for("/ok"))
    subscribe(client, editor, receiver.url_for("/fail"))
    assert client.post(D1_VN, json=a_change(), headers=editor).status_code == 201

    assert worker.run_once() == 2

    port = free_port()
    server, thread = worker.metrics.serve("127.0.0.1", port)
    try:
        found = parse(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert found[("exportctl_worker_claims_total", ())] == 1
    assert found[("exportctl_worker_claimed_deliveries_total", ())] == 2
    assert found[("exportctl_worker_attempts_total", (("outcome", "succeeded"),))] == 1
    assert found[("exportctl_worker_attempts_total", (("outcome", "pending"),))] == 1
    assert found[("exportctl_worker_attempt_duration_seconds_count", ())] == 2
    assert found[("exportctl_worker_heartbeat_timestamp_seconds", ())] > 0
    assert found[("exportctl_worker_info", (("worker", "test-worker"),))] == 1
    # Read from the database, as the API reports them: one delivery is due again (retry in 0 s).
    assert found[("exportctl_webhook_queue_depth", ())] == 1
    assert found[("exportctl_webhook_deliveries", (("state", "succeeded"),))] == 1


def test_api_metrics_show_each_workers_heartbeat_age(app, client, worker, frozen_clock):
    worker.run_once()  # an idle round still beats
    frozen_clock.advance(seconds=42)

    found = parse(client.get("/metrics").get_data(as_text=True))

    assert found[("exportctl_worker_heartbeat_age_seconds", (("worker", "test-worker"),))] == 42


def test_a_worker_that_stops_removes_its_heartbeat(app, worker):
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    with app.app_context(), db.database().sessionmaker() as session:
        for _ in range(200):
            if session.scalars(select(WorkerHeartbeat.name)).all():
                break
            stop.wait(0.02)
            session.rollback()
        assert session.scalars(select(WorkerHeartbeat.name)).all() == ["test-worker"]
        stop.set()
        runner.join(10)
        session.rollback()
        assert session.scalars(select(WorkerHeartbeat.name)).all() == []


def test_api_metrics_count_the_workers_alive_so_a_dead_one_stops_counting(app, client, worker, frozen_clock):
    # A killed worker's row stays (for diagnosis) but must not look alive; a replaced one must
    # not keep an alert firing: alert on the count alive, not on the oldest age.
    worker.run_once()
    assert parse(client.get("/metrics").get_data(as_text=True))[("exportctl_workers_alive", ())] == 1

    frozen_clock.advance(minutes=5)  # it died without saying so

    found = parse(client.get("/metrics").get_data(as_text=True))
    assert found[("exportctl_workers_alive", ())] == 0
    assert found[("exportctl_worker_heartbeat_age_seconds", (("worker", "test-worker"),))] == 300
