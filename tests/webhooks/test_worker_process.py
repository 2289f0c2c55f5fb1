"""At-least-once, proven with real processes: kill -9 a worker mid-batch; another delivers everything."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from werkzeug import Response

from service import db
from service.models import Delivery
from tests.conftest import a_change, create_key
from tests.webhooks.conftest import subscribe

CHANGES = 12


def start_worker(database_url: str, log_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXPORTCTL_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        # The default lease (15 s, renewed by a heartbeat): what a killed worker costs in production.
        "EXPORTCTL_WEBHOOK_CONNECT_TIMEOUT": "1s",
        "EXPORTCTL_WEBHOOK_READ_TIMEOUT": "1s",
        "EXPORTCTL_WORKER_CONCURRENCY": "4",
        "EXPORTCTL_WORKER_BATCH_SIZE": "8",
        "EXPORTCTL_WORKER_POLL_INTERVAL": "50ms",
        "EXPORTCTL_WEBHOOK_RETRY_SCHEDULE": "1s,1s,1s",
    }
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=log
        )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_killing_a_worker_mid_batch_loses_no_event(database_url, receiver, frozen_clock, tmp_path, build_app):
    frozen_clock.now = datetime.now(UTC)  # the worker processes run on the real clock
    app = build_app(database_url)
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    subscribe(client, editor, receiver.url_for("/hook"))
    for day in range(CHANGES):
        status = "removed" if day % 2 == 0 else "listed"
        response = client.post(
            "/v1/lists/us-ear-d1/entries/VN/changes",
            json=a_change(status=status, effective_on=f"2026-11-{day + 1:02d}"),
            headers=editor,
        )
        assert response.status_code == 201
    with app.app_context(), db.database().sessionmaker() as session:
        expected = {f"evt_{d.event_id}" for d in session.scalars(select(Delivery))}
    assert len(expected) == CHANGES

    seen: list[str] = []
    stuck = threading.Event()
    release = threading.Event()

    def hang(request):
        seen.append(request.headers["webhook-id"])
        stuck.set()
        release.wait(30)  # the first worker is killed while it waits for us
        return Response("too late")

    def accept(request):
        seen.append(request.headers["webhook-id"])
        return Response("ok")

    receiver.expect_request("/hook").respond_with_handler(hang)
    first = start_worker(database_url, tmp_path / "first.log")
    try:
        wait_for(stuck.is_set, 30, "the first worker to start its batch")
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    receiver.clear()
    receiver.expect_request("/hook").respond_with_handler(accept)
    release.set()
    assert first.returncode == -signal.SIGKILL

    second = start_worker(database_url, tmp_path / "second.log")
    try:

        def all_succeeded():
            with app.app_context(), db.database().sessionmaker() as session:
                return {d.state for d in session.scalars(select(Delivery))} == {"succeeded"}

        wait_for(all_succeeded, 60, "the second worker to deliver every event")
        recovery = time.monotonic() - killed_at
    finally:
        second.terminate()
        second.wait(30)

    assert expected <= set(seen), f"lost: {sorted(expected - set(seen))}"
    print(f"recovery after kill -9: {recovery:.1f} s to the last delivery")
    assert recovery < 30, f"took {recovery:.1f} s to deliver what the killed worker held"
    assert second.returncode == 0, (tmp_path / "second.log").read_text()[-2000:]
