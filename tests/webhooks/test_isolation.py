"""One subscription's faults and operational events never reach another (issue 7)."""

from sqlalchemy import select, update

from service import db
from service.models import Delivery, Event, Webhook
from tests.conftest import a_change
from tests.webhooks.conftest import received, subscribe

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def states(session):
    session.expire_all()
    return {d.webhook_id: d.state for d in session.scalars(select(Delivery).order_by(Delivery.id))}


def corrupt_secret(app, webhook_id):
    """A stored secret signing cannot use (as a bad restore or a manual edit would leave it)."""
    with app.app_context(), db.database().sessionmaker() as s:
        s.execute(update(Webhook).where(Webhook.id == webhook_id).values(secret="whsec_!!not base64!!"))
        s.commit()


def test_a_delivery_that_cannot_be_signed_fails_alone(app, client, editor, receiver, worker, session):
    healthy_id, secret = subscribe(client, editor, receiver.url_for("/healthy"))
    broken_id, _ = subscribe(client, editor, receiver.url_for("/broken"))
    corrupt_secret(app, broken_id)
    receiver.expect_request("/healthy").respond_with_data("ok")
    receiver.expect_request("/broken").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)

    assert worker.run_once() == 2

    assert states(session) == {healthy_id: "succeeded", broken_id: "pending"}
    [(_, payload)] = received(receiver, secret)
    assert payload["type"] == "entry.status_changed"
    log = client.get(f"/v1/webhooks/{broken_id}/deliveries", headers=editor).get_json()["items"]
    assert log[0]["attempt_log"][0]["http_status"] is None
    assert "sign" in log[0]["attempt_log"][0]["error"].lower()

    while worker.run_once():  # the broken one runs out of retries; the healthy one is never resent
        pass
    assert states(session) == {healthy_id: "succeeded", broken_id: "failed"}
    assert [r.path for r, _ in receiver.log] == ["/healthy"]


def test_an_event_that_cannot_be_serialised_fails_alone(app, client, editor, receiver, worker, session):
    """Stored data a receiver cannot be sent (a lone surrogate written before input was checked)."""
    _, secret = subscribe(client, editor, receiver.url_for("/hook"))
    receiver.expect_request("/hook").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)
    client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=editor)
    with app.app_context(), db.database().sessionmaker() as s:
        poisoned = s.scalars(
            select(Event).where(Event.list_id == "us-ear-d1").order_by(Event.id.desc())
        ).first()
        poisoned.data = {**poisoned.data, "note": "\ud800"}
        s.commit()
        poisoned_id = poisoned.id

    worker.run_once()

    session.expire_all()
    by_event = {d.event_id: d for d in session.scalars(select(Delivery))}
    assert by_event[poisoned_id].state == "pending"
    assert by_event[poisoned_id].last_error
    assert [d.state for e, d in by_event.items() if e != poisoned_id] == ["succeeded"]
    [(_, payload)] = received(receiver, secret)
    assert payload["data"]["list"]["id"] == "us-ear-d3"


def test_operational_events_go_only_to_subscriptions_that_may_see_them(
    client, editor, admin, receiver, worker, session
):
    failing_id, _ = subscribe(client, editor, receiver.url_for("/failing"))
    subscribe(client, editor, receiver.url_for("/other"))
    subscribe(client, editor, receiver.url_for("/nosy"), event_types=["webhook.failing"])
    subscribe(client, admin, receiver.url_for("/ops"), event_types=["webhook.failing"])
    receiver.expect_request("/failing").respond_with_data("no", status=500)
    for path in ("/other", "/nosy", "/ops"):
        receiver.expect_request(path).respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)

    worker.run_once()  # /failing fails: webhook.failing about it
    worker.run_once()

    by_path: dict[str, list[str]] = {}
    for request, _ in receiver.log:
        by_path.setdefault(request.path, []).append(request.get_json()["type"])
    assert by_path["/other"] == ["entry.status_changed"]  # empty event_types: data events only
    assert "/nosy" not in by_path  # an editor's subscription sees only its own failures
    assert by_path["/ops"] == ["webhook.failing"]  # an admin's operations subscription sees all
    assert set(by_path["/failing"]) == {"entry.status_changed"}  # its retries, nothing else
    [event] = session.scalars(select(Event).where(Event.type == "webhook.failing"))
    assert event.data["webhook_id"] == failing_id


def test_a_subscription_that_names_operational_events_hears_about_itself(
    client, editor, receiver, worker, session
):
    webhook_id, _ = subscribe(
        client, editor, receiver.url_for("/self"), event_types=["entry.status_changed", "webhook.recovered"]
    )
    receiver.expect_ordered_request("/self").respond_with_data("down", status=500)
    receiver.expect_ordered_request("/self").respond_with_data("ok")
    receiver.expect_ordered_request("/self").respond_with_data("ok")
    client.post(D1_VN, json=a_change(), headers=editor)

    while worker.run_once():
        pass

    types = [request.get_json()["type"] for request, _ in receiver.log]
    assert types == ["entry.status_changed", "entry.status_changed", "webhook.recovered"]
    assert receiver.log[-1][0].get_json()["data"]["webhook_id"] == webhook_id


def test_replay_does_not_leak_another_subscriptions_operational_events(
    client, editor, admin, receiver, worker, session
):
    subscribe(client, editor, receiver.url_for("/failing"))
    receiver.expect_request("/failing").respond_with_data("no", status=500)
    client.post(D1_VN, json=a_change(), headers=editor)
    worker.run_once()
    other_id, _ = subscribe(
        client, editor, receiver.url_for("/other"), event_types=["entry.status_changed", "webhook.failing"]
    )

    response = client.post(
        f"/v1/webhooks/{other_id}/replay",
        json={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
        headers=editor,
    )

    assert response.status_code == 202, response.get_json()
    session.expire_all()
    replayed = session.scalars(select(Delivery).where(Delivery.webhook_id == other_id)).all()
    assert replayed and {d.event.type for d in replayed} == {"entry.status_changed"}


def test_only_an_admin_key_makes_an_operations_subscription(client, editor, admin):
    body = {"url": "http://127.0.0.1:9/ops", "event_types": ["webhook.disabled"]}

    by_editor = client.post("/v1/webhooks", json=body, headers=editor).get_json()
    by_admin = client.post("/v1/webhooks", json=body, headers=admin).get_json()
    patched = client.patch(
        f"/v1/webhooks/{by_admin['id']}", json={"event_types": ["webhook.failing"]}, headers=editor
    ).get_json()

    assert (by_editor["operations"], by_admin["operations"]) == (False, True)
    assert patched["operations"] is False  # an editor's change takes the admin's reach away
