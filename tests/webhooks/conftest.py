"""Real HTTP receivers on 127.0.0.1 and a worker driven synchronously with run_once()."""

import json
from datetime import datetime
from unittest.mock import patch

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook as Verifier

from service import clock
from service.webhooks.worker import DeliveryWorker


@pytest.fixture(scope="session")
def _receiver_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver(_receiver_server):
    """A real HTTP server on 127.0.0.1 (threaded), cleared for each test."""
    _receiver_server.clear()
    yield _receiver_server
    _receiver_server.clear()


@pytest.fixture
def worker(app):
    worker = DeliveryWorker(app, name="test-worker")
    yield worker
    worker.close()


@pytest.fixture
def build_worker():
    """A `DeliveryWorker` for a test that needs one of its own (another app, another name): every
    worker it builds is closed at teardown, whether the test passed or not."""
    built = []

    def build(app, name: str) -> DeliveryWorker:
        built.append(DeliveryWorker(app, name=name))
        return built[-1]

    yield build
    for worker in reversed(built):
        worker.close()


def subscribe(client, headers, url, **filters):
    response = client.post("/v1/webhooks", json={"url": url, **filters}, headers=headers)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    return created["id"], created["secret"]


class _ServiceTime(datetime):
    """datetime whose now() is the service's (frozen) clock, so the verifier's 5-minute
    tolerance is measured against the time the test says it is."""

    @classmethod
    def now(cls, tz=None):
        return clock.utcnow().astimezone(tz) if tz else clock.utcnow()


def verify(secret, body, headers):
    """The standardwebhooks package's own verification, as a receiver runs it."""
    with patch("standardwebhooks.webhooks.datetime", _ServiceTime):
        return Verifier(secret).verify(body, headers)


def received(server, secret=None):
    """Every POST the receiver got: verified with `secret` when given, as (headers, payload)."""
    deliveries = []
    for request, _response in server.log:
        headers = dict(request.headers)
        body = request.get_data(as_text=True)
        payload = verify(secret, body, headers) if secret else json.loads(body)
        deliveries.append((headers, payload))
    return deliveries
