"""An idle worker is woken by the commit that queues deliveries (PostgreSQL LISTEN/NOTIFY;
SQLite: its data version moving), not by its next poll."""

import threading
import time

import pytest
from sqlalchemy import text

from service import db
from service.domain.outbox import wake_workers
from service.webhooks.worker import Wake
from tests.conftest import a_change
from tests.webhooks.conftest import subscribe

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def waited(wake: Wake, timeout: float) -> float:
    started = time.monotonic()
    wake.wait(threading.Event(), timeout)
    return time.monotonic() - started


@pytest.fixture
def wake(app):
    with app.app_context():
        wake = Wake(db.database().engine)
    wake.listen()
    yield wake
    wake.close()


def test_a_committed_delivery_wakes_a_listening_worker(app, client, editor, receiver, wake):
    subscribe(client, editor, receiver.url_for("/hook"))
    wake.wait(threading.Event(), 0.1)  # the subscription's own commit may have notified
    assert client.post(D1_VN, json=a_change(), headers=editor).status_code == 201

    assert waited(wake, 10) < 5  # woken at the commit, long before the timeout


def test_a_rolled_back_transaction_wakes_nobody(app, client, editor, receiver, wake):
    subscribe(client, editor, receiver.url_for("/hook"))
    wake.wait(threading.Event(), 0.1)  # the subscription's own commit
    with app.app_context(), db.database().sessionmaker() as session:
        wake_workers(session)
        session.execute(text("UPDATE entries SET version = version + 1"))  # a write, then not kept
        session.rollback()

    assert waited(wake, 0.5) >= 0.45


def test_without_notifications_the_worker_waits_its_poll_interval(app, wake):
    wake.close()
    wake.listen = lambda: None  # type: ignore[method-assign]  # as if LISTEN / the watch were unavailable

    assert 0.25 <= waited(wake, 0.3) < 2
