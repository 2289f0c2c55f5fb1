"""Delivering events: signed, filtered, retried, logged; driven by run_once() against real receivers."""

import json
import re
import shutil
import socket
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from service import clock, db
from service.models import Delivery, Event, Webhook
from service.webhooks.worker import claim
from tests.conftest import a_change, create_key
from tests.webhooks.conftest import received, subscribe, verify

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def resolve_to(monkeypatch, address):
    """Make every host name resolve to `address` (as a DNS server would)."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in ("127.0.0.1", "::1"):
            return real(host, port, *args, **kwargs)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def deliveries(session):
    session.expire_all()
    return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_a_recorded_change_arrives_signed_with_its_feed_sequence(client, editor, receiver, worker):
    webhook_id, secret = subscribe(client, editor, receiver.url_for("/hook"), countries=["VN"])
    receiver.expect_request("/hook", method="POST").respond_with_data("thanks")

    change = client.post(D1_VN, json=a_change(), headers=editor).get_json()["change"]
    attempted = worker.run_once()

    assert attempted == 1
    [(headers, payload)] = received(receiver, secret)
    assert payload["type"] == "entry.status_changed"
    assert payload["data"]["id"] == change["id"]
    assert payload["data"]["country"]["alpha_2"] == "VN"
    assert payload["data"]["list"]["id"] == "us-ear-d1"
    assert payload["data"]["from_status"] == "pending_removal"
    assert payload["data"]["status"] == "removed"
    assert payload["data"]["effective_on"] == "2026-11-20"
    assert payload["data"]["restrictions_apply"] is False
    assert payload["data"]["sources"][0]["citation"] == "91 FR 99999"
    assert payload["data"]["links"]["entry"] == "/v1/lists/us-ear-d1/entries/VN"
    assert headers["Webhook-Id"] == payload["id"]
    feed = client.get(f"/v1/events?after={payload['sequence'] - 1}&limit=1").get_json()["items"]
    assert feed[0] == payload  # the webhook body is the feed's event, byte for byte in content
    log = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=editor).get_json()["items"]
    assert log[0]["state"] == "succeeded"
    assert log[0]["attempt_log"][0]["http_status"] == 200
    assert log[0]["attempt_log"][0]["response_body"] == "thanks"


def test_filters_decide_who_receives_what(client, editor, receiver, worker):
    _, vn_secret = subscribe(client, editor, receiver.url_for("/vn"), countries=["VN"])
    subscribe(client, editor, receiver.url_for("/fr"), countries=["FR"])
    subscribe(client, editor, receiver.url_for("/d3"), lists=["us-ear-d3"])
    subscribe(client, editor, receiver.url_for("/lists"), event_types=["list.created"])
    _, all_secret = subscribe(client, editor, receiver.url_for("/all"))
    receiver.expect_request("/vn").respond_with_data("ok")
    receiver.expect_request("/all").respond_with_data("ok")

    client.post(D1_VN, json=a_change(), headers=editor)
    worker.run_once()

    paths = sorted(request.path for request, _ in receiver.log)
    assert paths == ["/all", "/vn"]


def test_headers_follow_standard_webhooks(client, editor, receiver, worker):
    _, secret = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")

    client.post(D1_VN, json=a_change(), headers=editor)
    worker.run_once()

    [(headers, payload)] = received(receiver, secret)
    assert headers["Webhook-Id"].startswith("evt_")
    assert int(headers["Webhook-Timestamp"]) == int(clock.utcnow().timestamp())
    assert headers["Webhook-Signature"].startswith("v1,")
    assert headers["Content-Type"] == "application/json"
    assert set(payload) >= {"type", "timestamp", "data", "sequence", "id"}


def test_a_wrong_secret_does_not_verify(client, editor, receiver, worker):
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)
    worker.run_once()

    with pytest.raises(Exception, match="signature"):
        received(receiver, "whsec_" + "A" * 32)


def test_failures_are_retried_on_schedule_until_delivered(
    client, editor, receiver, worker, session, frozen_clock
):
    webhook_id, secret = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    receiver.expect_ordered_request("/hook").respond_with_data("still down", status=502)
    receiver.expect_ordered_request("/hook").respond_with_data("ok", status=200)
    client.post(D1_VN, json=a_change(), headers=editor)

    for _ in range(3):
        worker.run_once()

    [delivery] = deliveries(session)
    assert delivery.state == "succeeded"
    assert delivery.attempts == 3
    payloads = [p for _, p in received(receiver, secret)]
    assert len({p["id"] for p in payloads}) == 1  # the same webhook-id on every retry
    log = client.get(f"/v1/webhooks/{webhook_id}/deliveries/{delivery.id}", headers=editor).get_json()
    assert [a["http_status"] for a in log["attempt_log"]] == [500, 502, 200]
    assert log["attempt_log"][0]["response_body"] == "down"
    assert log["attempt_log"][0]["error"] == "HTTP 500"
    operational = [
        (e.type, e.data["webhook_id"])
        for e in session.scalars(select(Event).where(Event.type.like("webhook.%")).order_by(Event.id))
    ]
    assert operational == [("webhook.failing", webhook_id), ("webhook.recovered", webhook_id)]


def test_the_retry_schedule_and_jitter(database_url, receiver, frozen_clock, build_app, build_worker):
    app = build_app(database_url, WEBHOOK_RETRY_SCHEDULE="5s,5m,30m", WEBHOOK_RETRY_JITTER=0.2)
    from tests.conftest import create_key

    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("no", status=500)
    client.post(D1_VN, json=a_change(), headers=editor)
    worker = build_worker(app, "w")
    waits = []
    with app.app_context(), db.database().sessionmaker() as session:
        for _ in range(4):
            assert worker.run_once() == 1
            delivery = session.scalars(select(Delivery)).one()
            session.refresh(delivery)
            if delivery.state == "pending":
                waits.append(delivery.next_attempt_at - clock.utcnow())
                frozen_clock.now = delivery.next_attempt_at
        assert delivery.state == "failed"
        assert delivery.attempts == 4
    expected = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30)]
    for wait, base in zip(waits, expected, strict=True):
        assert base * 0.8 <= wait <= base * 1.2


def test_nothing_is_sent_before_it_is_due(
    client, editor, receiver, worker, database_url, frozen_clock, build_app, build_worker
):
    app = build_app(database_url, WEBHOOK_RETRY_SCHEDULE="1h")
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("no", status=500)
    client.post(D1_VN, json=a_change(), headers=editor)
    slow = build_worker(app, "slow")

    assert slow.run_once() == 1
    assert slow.run_once() == 0
    frozen_clock.advance(hours=2)
    assert slow.run_once() == 1


@pytest.mark.parametrize(("status", "header", "seconds"), [(429, "120", 120), (503, "30", 30)])
def test_retry_after_is_honoured(client, editor, receiver, worker, session, status, header, seconds):
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data(
        "slow down", status=status, headers={"Retry-After": header}
    )
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()

    [delivery] = deliveries(session)
    assert delivery.state == "pending"
    assert delivery.next_attempt_at - clock.utcnow() == timedelta(seconds=seconds)


def test_410_gone_disables_the_subscription(client, editor, admin, receiver, worker, session):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/gone"))
    subscribe(client, admin, receiver.url_for("/ops"), event_types=["webhook.disabled"])
    receiver.expect_request("/gone").respond_with_data("gone", status=410)
    receiver.expect_request("/ops").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()
    worker.run_once()  # delivers the webhook.disabled event to the other subscription

    webhook = client.get(f"/v1/webhooks/{webhook_id}", headers=editor).get_json()
    assert webhook["enabled"] is False
    assert "410" in webhook["disabled_reason"]
    gone = [d for d in deliveries(session) if d.webhook_id == webhook_id]
    assert [d.state for d in gone] == ["failed"]
    ops = [request for request, _ in receiver.log if request.path == "/ops"]
    assert json.loads(ops[0].get_data())["type"] == "webhook.disabled"
    # A disabled subscription gets nothing more.
    client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=editor)
    assert [d for d in deliveries(session) if d.webhook_id == webhook_id and d.state == "pending"] == []


def test_five_days_of_failure_disables_and_reenabling_resumes(
    client, editor, receiver, worker, session, frozen_clock
):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("no", status=500)
    for day in range(6):
        client.post(
            D1_VN,
            json=a_change(status="listed" if day % 2 else "removed", effective_on=f"2026-11-2{day}"),
            headers=editor,
        )
        worker.run_once()
        frozen_clock.advance(days=1)

    webhook = client.get(f"/v1/webhooks/{webhook_id}", headers=editor).get_json()
    assert webhook["enabled"] is False
    assert "5 days" in webhook["disabled_reason"]
    assert session.scalars(select(Event).where(Event.type == "webhook.disabled")).all()

    receiver.clear()
    receiver.expect_request("/hook").respond_with_data("ok")
    assert (
        client.patch(f"/v1/webhooks/{webhook_id}", json={"enabled": True}, headers=editor).status_code == 200
    )
    while worker.run_once():
        pass
    assert {d.state for d in deliveries(session)} <= {"succeeded", "failed"}
    assert any(d.state == "succeeded" for d in deliveries(session))


def test_redirects_are_not_followed(client, editor, receiver, worker, session):
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": receiver.url_for("/x")}
    )
    receiver.expect_request("/x").respond_with_data("should not be reached")
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()

    assert [request.path for request, _ in receiver.log] == ["/hook"]
    assert deliveries(session)[0].last_status == 302
    assert deliveries(session)[0].state == "pending"


def test_the_environment_neither_proxies_nor_authenticates_deliveries(
    client, editor, receiver, worker, session, monkeypatch, tmp_path
):
    """A proxy would connect in place of the pinned address, and ~/.netrc would give a host's
    credentials to anyone who subscribes a URL on it: the webhook session ignores both."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login operator password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("thanks")
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()

    [(request, _)] = receiver.log
    assert "Authorization" not in request.headers
    assert deliveries(session)[0].state == "succeeded"


def test_only_the_first_2_kib_of_a_response_is_kept(client, editor, receiver, worker, session):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("x" * 100_000)
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()

    log = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=editor).get_json()["items"]
    assert len(log[0]["attempt_log"][0]["response_body"]) == 2048


def test_a_slow_receiver_times_out(database_url, receiver, session, build_app, build_worker):
    from tests.conftest import create_key

    app = build_app(database_url, WEBHOOK_READ_TIMEOUT="200ms")
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    subscribe(client, editor, receiver.url_for("/slow"))
    release = threading.Event()

    def slow_handler(_request):
        release.wait(5)
        return Response("late")

    receiver.expect_request("/slow").respond_with_handler(slow_handler)
    client.post(D1_VN, json=a_change(), headers=editor)
    worker = build_worker(app, "w")

    worker.run_once()
    release.set()

    delivery = deliveries(session)[0]
    assert delivery.state == "pending"
    assert "Timeout" in delivery.last_error


def test_a_refused_connection_is_a_logged_failure(client, editor, worker, session):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscribe(client, editor, f"http://127.0.0.1:{port}/nobody")
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()

    delivery = deliveries(session)[0]
    assert delivery.state == "pending"
    assert "ConnectionError" in delivery.last_error


def test_dns_rebinding_to_a_private_address_is_refused_at_delivery(
    database_url, session, monkeypatch, build_app, build_worker
):
    from tests.conftest import create_key

    app = build_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    resolve_to(monkeypatch, "93.184.215.14")  # public when subscribed ...
    subscribe(client, editor, "http://rebind.example.com/hook")
    client.post(D1_VN, json=a_change(), headers=editor)
    resolve_to(monkeypatch, "127.0.0.1")  # ... private when delivered
    worker = build_worker(app, "w")

    worker.run_once()

    delivery = deliveries(session)[0]
    assert delivery.state == "pending"
    assert "target rejected" in delivery.last_error
    assert "127.0.0.1" in delivery.last_error


def test_rebinding_between_the_check_and_the_connection_is_refused_too(
    database_url, session, monkeypatch, build_app, build_worker
):
    """The resolver answers public to the pre-send check and private to the connection itself:
    the session connects only to the address it checked, so nothing reaches 127.0.0.1."""
    from tests.conftest import create_key

    app = build_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    resolve_to(monkeypatch, "93.184.215.14")
    subscribe(client, editor, "http://rebind.example.com/hook")
    client.post(D1_VN, json=a_change(), headers=editor)
    answers = iter(["93.184.215.14", "127.0.0.1", "127.0.0.1"])
    real = socket.getaddrinfo

    def flipping(host, port, *args, **kwargs):
        if host in ("127.0.0.1", "::1"):
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.1"), port or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", flipping)
    worker = build_worker(app, "w")

    worker.run_once()

    delivery = deliveries(session)[0]
    assert delivery.state == "pending"
    assert "target rejected" in delivery.last_error
    assert "non-public" in delivery.last_error
    assert "not allowed" not in delivery.last_error  # refused at connect time, not by the pre-send check


def test_a_receiver_trickling_its_response_cannot_hold_a_send(
    database_url, receiver, session, build_app, build_worker
):
    from tests.conftest import create_key

    app = build_app(database_url, WEBHOOK_READ_TIMEOUT="300ms")
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    subscribe(client, editor, receiver.url_for("/trickle"))

    def trickle(_request):
        def body():
            for _ in range(2048):  # a byte every 50 ms: 100 s for the whole excerpt
                yield b"x"
                time.sleep(0.05)

        return Response(body(), status=200)

    receiver.expect_request("/trickle").respond_with_handler(trickle)
    client.post(D1_VN, json=a_change(), headers=editor)
    worker = build_worker(app, "w")
    started = time.monotonic()

    worker.run_once()

    assert time.monotonic() - started < 5
    delivery = deliveries(session)[0]
    assert delivery.state == "succeeded"
    assert 0 < len(delivery.attempt_log[0].response_body) < 2048


def test_rotation_signs_with_both_secrets_for_24_hours(client, editor, receiver, worker, frozen_clock):
    webhook_id, old = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")

    rotated = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=editor)
    new = rotated.get_json()["secret"]
    client.post(D1_VN, json=a_change(), headers=editor)
    worker.run_once()

    assert rotated.status_code == 200
    assert new != old
    [(headers, _)] = received(receiver)
    body = receiver.log[0][0].get_data(as_text=True)
    assert len(headers["Webhook-Signature"].split(" ")) == 2
    verify(old, body, headers)
    verify(new, body, headers)

    frozen_clock.advance(hours=25)
    client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor)
    worker.run_once()

    later_headers = dict(receiver.log[1][0].headers)
    later_body = receiver.log[1][0].get_data(as_text=True)
    assert len(later_headers["Webhook-Signature"].split(" ")) == 1
    verify(new, later_body, later_headers)
    with pytest.raises(Exception, match="signature"):
        verify(old, later_body, later_headers)


def test_ping_reaches_only_its_subscription(client, editor, receiver, worker):
    webhook_id, secret = subscribe(client, editor, receiver.url_for("/one"))
    subscribe(client, editor, receiver.url_for("/other"))
    receiver.expect_request("/one").respond_with_data("pong")

    response = client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor)
    worker.run_once()

    assert response.status_code == 202
    assert response.get_json()["state"] == "pending"
    [(_, payload)] = received(receiver, secret)
    assert payload["type"] == "webhook.ping"


def test_redeliver_sends_the_same_event_again(client, editor, receiver, worker):
    webhook_id, secret = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)
    worker.run_once()
    delivery_id = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=editor).get_json()["items"][0][
        "id"
    ]

    again = client.post(f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", headers=editor)
    worker.run_once()

    assert again.status_code == 202
    assert again.get_json()["id"] != delivery_id
    first, second = received(receiver, secret)
    assert first[1] == second[1]
    assert first[0]["Webhook-Id"] == second[0]["Webhook-Id"]
    assert (
        client.post(f"/v1/webhooks/{webhook_id}/deliveries/99999/redeliver", headers=editor).status_code
        == 404
    )


def test_replay_queues_a_window_of_matching_events(client, editor, receiver, worker, frozen_clock):
    webhook_id, secret = subscribe(client, editor, receiver.url_for("/hook"), lists=["us-ear-d3"])
    receiver.expect_request("/hook").respond_with_data("ok")
    start = frozen_clock.advance(minutes=1)  # after the seeded history
    client.post(D1_VN, json=a_change(), headers=editor)
    frozen_clock.advance(minutes=1)
    client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=editor)
    frozen_clock.advance(minutes=1)
    end = clock.utcnow()
    while worker.run_once():
        pass
    receiver.clear()
    receiver.expect_request("/hook").respond_with_data("ok")

    replay = client.post(
        f"/v1/webhooks/{webhook_id}/replay",
        json={"since": start.isoformat(), "until": end.isoformat()},
        headers=editor,
    )
    worker.run_once()

    assert replay.status_code == 202
    assert replay.get_json() == {"queued": 1}
    [(_, payload)] = received(receiver, secret)
    assert payload["data"]["list"]["id"] == "us-ear-d3"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": "2026-11-23T00:00:00Z"}, "until"),
        ({"since": "2026-11-24T00:00:00Z", "until": "2026-11-23T00:00:00Z"}, "until"),
        ({"since": "yesterday", "until": "2026-11-23T00:00:00Z"}, "since"),
    ],
)
def test_bad_replay_windows(client, editor, receiver, body, field):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))

    response = client.post(f"/v1/webhooks/{webhook_id}/replay", json=body, headers=editor)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_seed_loading_does_not_flood_subscribers(client, editor, receiver, app, session, tmp_path):
    from service import seeding

    subscribe(client, editor, receiver.url_for("/hook"))
    shutil.copytree(seeding.DEFAULT_SEEDS, tmp_path, dirs_exist_ok=True)
    history = (seeding.DEFAULT_SEEDS / "history.yaml").read_text() + (
        "  - country: FR\n    list: us-ear-d2\n    status: listed\n"
        "    effective_on: null\n    sources: [vtc-2026-02-21]\n"
    )
    (tmp_path / "history.yaml").write_text(history)
    events_before = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))

    with app.app_context(), db.database().sessionmaker() as seed_session:
        report = seeding.load_seeds(seed_session, tmp_path)

    assert report.changes == 1
    assert session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) == events_before + 1
    assert deliveries(session) == []


def change_fanned_out_to(app, receiver, hooks: int) -> None:
    """One change, on an app a test built with settings of its own, queued to `hooks`
    subscriptions (/hook/0, /hook/1, ...) that all answer 200."""
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    for index in range(hooks):
        subscribe(client, editor, receiver.url_for(f"/hook/{index}"))
    receiver.expect_request(re.compile("/hook/.*"), method="POST").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)


def test_deliver_claims_batch_after_batch_while_sending(
    database_url, receiver, session, build_app, build_worker
):
    app = build_app(database_url, WORKER_BATCH_SIZE=2, WORKER_CONCURRENCY=2)
    change_fanned_out_to(app, receiver, hooks=5)
    worker = build_worker(app, "w")

    assert worker.deliver() == 5

    assert sorted(request.path for request, _ in receiver.log) == [f"/hook/{i}" for i in range(5)]
    assert {(d.state, d.attempts, d.leased_by) for d in deliveries(session)} == {("succeeded", 1, None)}


def test_a_failed_claim_still_records_the_sends_in_flight(
    database_url, receiver, session, build_app, build_worker, monkeypatch
):
    """Claiming the next batch fails while one is being sent: that one is recorded all the same
    (not left to its lease, to be sent again by whoever takes it over)."""
    app = build_app(database_url, WORKER_BATCH_SIZE=2)
    change_fanned_out_to(app, receiver, hooks=3)
    worker = build_worker(app, "w")
    claim_jobs, calls = worker._claim_jobs, []

    def second_fails(**kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the database went away")
        return claim_jobs(**kwargs)

    monkeypatch.setattr(worker, "_claim_jobs", second_fails)

    assert worker.deliver() == 2

    states = sorted((d.state, d.attempts) for d in deliveries(session))
    assert states == [("pending", 0), ("succeeded", 1), ("succeeded", 1)]
    assert len(receiver.log) == 2


def test_two_workers_never_claim_the_same_delivery(client, editor, receiver, app):
    webhook_ids = [subscribe(client, editor, receiver.url_for(f"/h{i}"))[0] for i in range(10)]
    client.post(D1_VN, json=a_change(), headers=editor)
    assert len(webhook_ids) == 10

    with app.app_context():
        maker = db.database().sessionmaker
        with maker() as one, maker() as two:
            first = claim(
                one, "one", now=clock.utcnow(), lease=timedelta(minutes=1), limit=6, max_attempts=10
            )
            second = claim(
                two, "two", now=clock.utcnow(), lease=timedelta(minutes=1), limit=6, max_attempts=10
            )

    assert len(first) == 6
    assert len(second) == 4
    assert not set(first) & set(second)


def test_an_expired_lease_is_taken_over(client, editor, receiver, app, frozen_clock, session, build_worker):
    _, secret = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)
    with app.app_context(), db.database().sessionmaker() as crashed:
        taken = claim(
            crashed,
            "crashed-worker",
            now=clock.utcnow(),
            lease=timedelta(minutes=2),
            limit=10,
            max_attempts=10,
        )
    assert len(taken) == 1
    rescuer = build_worker(app, "rescuer")

    before_expiry = rescuer.run_once()
    frozen_clock.advance(minutes=3)
    after_expiry = rescuer.run_once()

    assert (before_expiry, after_expiry) == (0, 1)
    assert deliveries(session)[0].state == "succeeded"
    assert deliveries(session)[0].attempts == 2  # the crashed worker's claim used one up
    assert len(received(receiver, secret)) == 1


def test_a_worker_that_lost_its_lease_changes_nothing(client, editor, receiver, app, session):
    from service.webhooks.delivery import Attempt, AttemptResult, RetryPolicy, record_attempts

    subscribe(client, editor, receiver.url_for("/hook"))
    client.post(D1_VN, json=a_change(), headers=editor)
    with app.app_context(), db.database().sessionmaker() as s:
        claim(s, "new-owner", now=clock.utcnow(), lease=timedelta(minutes=2), limit=10, max_attempts=10)
        delivery = s.scalars(select(Delivery)).one()
        applied = record_attempts(
            s,
            [Attempt(delivery, AttemptResult(http_status=200, duration_ms=5), clock.utcnow())],
            worker="old-owner",
            policy=RetryPolicy.from_config(app.config),
        )
        s.commit()

    assert applied == set()
    assert deliveries(session)[0].state == "delivering"
    assert deliveries(session)[0].leased_by == "new-owner"


def test_deliveries_log_pages_newest_first(client, editor, receiver, worker):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    for _ in range(3):
        client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor)

    first = client.get(f"/v1/webhooks/{webhook_id}/deliveries?limit=2", headers=editor).get_json()
    rest = client.get(
        f"/v1/webhooks/{webhook_id}/deliveries?cursor={first['next_cursor']}", headers=editor
    ).get_json()

    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3
    assert rest["next_cursor"] is None
    pending = client.get(f"/v1/webhooks/{webhook_id}/deliveries?state=pending", headers=editor).get_json()
    assert len(pending["items"]) == 3


def test_disabled_webhooks_are_neither_pinged_nor_claimed(client, editor, receiver, worker, session):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    client.post(D1_VN, json=a_change(), headers=editor)
    client.patch(f"/v1/webhooks/{webhook_id}", json={"enabled": False}, headers=editor)

    assert worker.run_once() == 0
    assert client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor).status_code == 409
    assert session.get(Webhook, webhook_id).enabled is False


def test_a_heartbeat_keeps_the_lease_of_a_send_that_outlasts_it(
    database_url, client, editor, receiver, session, frozen_clock, build_app, build_worker
):
    """A live worker keeps what it is sending however long the receiver takes; only a dead one loses it."""
    app = build_app(database_url, WORKER_LEASE="0.3s")
    worker = build_worker(app, "slow-but-alive")
    subscribe(client, editor, receiver.url_for("/slow"))
    client.post(D1_VN, json=a_change(), headers=editor)
    leases = []

    def slow(_request):
        for _ in range(4):  # four times the lease, with the service's clock moving on
            time.sleep(0.3)
            frozen_clock.advance(seconds=0.3)
            session.expire_all()
            leases.append((frozen_clock.now, deliveries(session)[0].lease_expires_at))
        return Response("finally")

    receiver.expect_request("/slow").respond_with_handler(slow)
    assert worker.run_once() == 1

    assert all(lease is not None and lease >= now for now, lease in leases)  # never expired
    assert len({lease for _, lease in leases}) > 1  # renewed, not one long lease
    assert deliveries(session)[0].state == "succeeded"


def test_an_old_failure_does_not_count_towards_disabling(
    client, editor, receiver, worker, session, frozen_clock
):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("no", status=500)
    client.post(D1_VN, json=a_change(), headers=editor)
    while worker.run_once():  # the retries run out (the test schedule has no delays)
        pass
    frozen_clock.advance(days=60)  # quiet for two months, then one transient failure
    client.post(D1_VN, json=a_change(status="listed", effective_on="2026-11-21"), headers=editor)

    worker.run_once()

    webhook = client.get(f"/v1/webhooks/{webhook_id}", headers=editor).get_json()
    assert webhook["enabled"] is True
    assert webhook["failing_since"] == clock.utcnow().isoformat().replace("+00:00", "Z")


def test_webhook_operational_events_stay_out_of_the_public_feed(client, editor, receiver, worker):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("no", status=500)
    etag = client.get("/v1/countries/VN").headers["ETag"]
    client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor)
    worker.run_once()  # fails: webhook.failing

    feed = client.get("/v1/events?after=500").get_json()["items"]
    assert [e["type"] for e in feed if e["type"].startswith("webhook.")] == []
    assert client.get("/v1/events?type=webhook.failing").status_code == 422
    # ... and they leave the lookups' cache alone.
    assert client.get("/v1/countries/VN", headers={"If-None-Match": etag}).status_code == 304


def test_a_last_attempt_whose_worker_vanished_fails_instead_of_repeating(
    client, editor, receiver, app, frozen_clock, session, build_worker
):
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)
    max_attempts = len(app.config["WEBHOOK_RETRY_SCHEDULE"]) + 1
    with app.app_context(), db.database().sessionmaker() as s:
        for _ in range(max_attempts):  # every attempt's worker dies before recording it
            assert claim(
                s,
                "doomed",
                now=clock.utcnow(),
                lease=timedelta(minutes=1),
                limit=5,
                max_attempts=max_attempts,
            )
            frozen_clock.advance(minutes=2)
    rescuer = build_worker(app, "rescuer")

    assert rescuer.run_once() == 0

    [delivery] = deliveries(session)
    assert (delivery.state, delivery.attempts) == ("failed", max_attempts)
    assert "no attempts left" in delivery.last_error
    assert receiver.log == []


def test_a_slow_receiver_holds_up_no_other_delivery(database_url, receiver, session, build_app, build_worker):
    """While one receiver takes its time, deliveries committed meanwhile leave within a poll
    interval or so (the threads are free), and the results that came back are recorded: they do
    not wait for the slow send (outside probe: a 10 s receiver held every other for 10 s)."""
    from tests.conftest import create_key

    app = build_app(database_url, WORKER_POLL_INTERVAL="50ms")
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    subscribe(client, editor, receiver.url_for("/slow"))
    fast_id, _secret = subscribe(client, editor, receiver.url_for("/fast"))
    release, slow_started, fast = threading.Event(), threading.Event(), []

    def slow_handler(_request):
        slow_started.set()
        release.wait(10)
        return Response("late")

    def fast_handler(request):
        fast.append(json.loads(request.get_data())["id"])
        return Response("ok")

    receiver.expect_request("/slow").respond_with_handler(slow_handler)
    receiver.expect_request("/fast").respond_with_handler(fast_handler)
    first = client.post(D1_VN, json=a_change(), headers=editor)
    assert first.status_code == 201, first.get_json()
    worker = build_worker(app, "w")
    stop = threading.Event()
    delivering = threading.Thread(target=worker.deliver, args=(stop,))
    delivering.start()
    try:
        deadline = time.monotonic() + 5
        while len(fast) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slow_started.wait(5)
        time.sleep(0.3)  # the worker has found nothing more to claim, and waits on the slow send
        second = client.post(
            D1_VN, json=a_change(status="pending_addition", effective_on="2026-11-21"), headers=editor
        )
        assert second.status_code == 201, second.get_json()
        deadline = time.monotonic() + 3
        while len(fast) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)

        assert len(fast) == 2, "the second event waited for the slow receiver"
        session.expire_all()
        fast_states = [d.state for d in deliveries(session) if d.webhook_id == fast_id]
        assert fast_states.count("succeeded") >= 1  # recorded while the slow send is in flight
    finally:
        release.set()
        stop.set()
        delivering.join(15)
    assert not delivering.is_alive()


def test_a_batch_of_many_events_sends_every_delivery_whatever_the_kept_bodies(
    client, editor, receiver, worker
):
    """The worker keeps the bodies of the last KEPT_BODIES events. A batch holding more events
    than that, one of them kept, must not evict the kept body before it reaches it (found by the
    outside probe: replays of the seeded history to three subscriptions failed deliveries with
    "event … not found" though every event exists). Here one body is kept, and the batch visits
    the kept event last (the worker goes through the batch's events as a set)."""
    subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")
    for status in ["removed", "pending_addition", "listed", "pending_removal", "removed"]:
        assert client.post(D1_VN, json=a_change(status=status), headers=editor).status_code == 201
    with db.database().sessionmaker() as session:
        queued = deliveries(session)
        visited = list({d.event_id for d in queued})  # in the order the worker's batch takes them
        kept = session.get(Event, visited[-1])
        worker._bodies[kept.id] = worker._serialise(kept)
    worker.KEPT_BODIES = 1

    while worker.run_once():
        pass

    with db.database().sessionmaker() as session:
        sent = deliveries(session)
        assert [(d.state, d.attempts) for d in sent] == [("succeeded", 1)] * len(queued)
