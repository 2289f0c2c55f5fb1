"""Managing subscriptions through the API; nothing here sends HTTP except ping tests via the worker."""

import logging

import pytest
from sqlalchemy import func, select

from service import close_app
from service.models import Delivery, Webhook
from tests.conftest import make_app
from tests.webhooks.conftest import subscribe

PROBLEM = "application/problem+json"


def test_create_returns_the_secret_once(client, editor, receiver):
    response = client.post(
        "/v1/webhooks",
        json={"url": receiver.url_for("/hook"), "description": "compliance", "countries": ["Vietnam", "fr"]},
        headers=editor,
    )

    assert response.status_code == 201
    created = response.get_json()
    assert created["secret"].startswith("whsec_")
    assert created["countries"] == ["FR", "VN"]  # references resolved, sorted
    assert created["enabled"] is True
    assert created["created_by"] == "alice"
    assert response.headers["Location"] == f"/v1/webhooks/{created['id']}"
    shown = client.get(response.headers["Location"], headers=editor)
    listed = client.get("/v1/webhooks", headers=editor)
    assert "secret" not in shown.get_json()
    assert created["secret"] not in shown.get_data(as_text=True)
    assert created["secret"] not in listed.get_data(as_text=True)
    assert [w["id"] for w in listed.get_json()["items"]] == [created["id"]]


def test_the_secret_is_never_logged(client, editor, receiver, worker, caplog):
    caplog.set_level(logging.DEBUG)
    webhook_id, secret = subscribe(client, editor, receiver.url_for("/hook"))
    rotated = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=editor).get_json()["secret"]
    receiver.expect_request("/hook").respond_with_data("ok")
    client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor)
    worker.run_once()

    for record in caplog.records:
        assert secret not in record.getMessage()
        assert rotated not in record.getMessage()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({}, "url"),
        ({"url": "https://example.org", "countries": ["Atlantis"]}, "countries.0"),
        ({"url": "https://example.org", "lists": ["us-ear-zz"]}, "lists.0"),
        ({"url": "https://example.org", "event_types": ["entry.deleted"]}, "event_types.0"),
        ({"url": "https://example.org", "colour": "red"}, "colour"),
        ({"url": "https://example.org", "countries": "VN"}, "countries"),
        ({"url": "https://example.org", "lists": ["us-\x00"]}, "lists.0"),
    ],
)
def test_bad_subscriptions_are_422s_naming_the_field(client, editor, session, body, field):
    response = client.post("/v1/webhooks", json=body, headers=editor)

    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert field in response.get_json()["errors"], response.get_json()
    assert session.scalar(select(func.count()).select_from(Webhook)) == 0


def test_webhooks_need_an_editor_key(client, reader):
    assert client.get("/v1/webhooks").status_code == 401
    assert client.get("/v1/webhooks", headers=reader).status_code == 403
    assert client.post("/v1/webhooks", json={"url": "https://example.org"}, headers=reader).status_code == 403


def test_patch_changes_filters_and_url(client, editor, receiver):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/a"))

    response = client.patch(
        f"/v1/webhooks/{webhook_id}",
        json={"url": receiver.url_for("/b"), "lists": ["us-ear-d1"], "event_types": ["entry.status_changed"]},
        headers=editor,
    )

    assert response.status_code == 200
    assert response.get_json()["url"].endswith("/b")
    assert response.get_json()["lists"] == ["us-ear-d1"]


def test_patch_honours_if_match_so_two_editors_cannot_overwrite_each_other(client, editor, receiver, session):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/a"))
    read = client.get(f"/v1/webhooks/{webhook_id}", headers=editor)
    etag = read.headers["ETag"]

    first = client.patch(
        f"/v1/webhooks/{webhook_id}", json={"description": "first"}, headers={**editor, "If-Match": etag}
    )
    assert first.status_code == 200
    assert first.headers["ETag"] not in (None, etag)

    second = client.patch(
        f"/v1/webhooks/{webhook_id}", json={"description": "second"}, headers={**editor, "If-Match": etag}
    )
    assert second.status_code == 412
    assert second.content_type == PROBLEM
    session.expire_all()
    assert session.get(Webhook, webhook_id).description == "first"
    assert client.get(f"/v1/webhooks/{webhook_id}", headers=editor).headers["ETag"] == first.headers["ETag"]

    malformed = client.patch(
        f"/v1/webhooks/{webhook_id}", json={"description": "x"}, headers={**editor, "If-Match": "no quotes"}
    )
    assert malformed.status_code == 422


def test_unknown_webhook_is_404(client, editor):
    assert client.get("/v1/webhooks/999", headers=editor).status_code == 404
    assert client.patch("/v1/webhooks/999", json={"enabled": True}, headers=editor).status_code == 404
    assert client.delete("/v1/webhooks/999", headers=editor).status_code == 404
    assert client.post("/v1/webhooks/999/ping", headers=editor).status_code == 404


def test_delete_cancels_what_is_queued_and_hides_the_webhook(client, editor, receiver, session):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    client.post(f"/v1/webhooks/{webhook_id}/ping", headers=editor)

    response = client.delete(f"/v1/webhooks/{webhook_id}", headers=editor)

    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"/v1/webhooks/{webhook_id}", headers=editor).status_code == 404
    assert {d.state for d in session.scalars(select(Delivery))} == {"cancelled"}


@pytest.fixture
def guarded_app(database_url):
    app = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
    yield app
    close_app(app)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://user:pass@example.org/hook",
    ],
)
def test_private_and_special_targets_are_refused(guarded_app, url):
    from tests.conftest import create_key

    client = guarded_app.test_client()
    editor = {"Authorization": f"Bearer {create_key(guarded_app, 'alice', 'editor')}"}

    response = client.post("/v1/webhooks", json={"url": url}, headers=editor)

    assert response.status_code == 422
    assert response.get_json()["type"] in ("/problems/webhook-url-rejected", "/problems/validation-error")
    assert "url" in response.get_json()["errors"]


def test_a_public_target_is_accepted(guarded_app, monkeypatch):
    from tests.conftest import create_key
    from tests.webhooks.test_delivery import resolve_to

    resolve_to(monkeypatch, "93.184.215.14")
    client = guarded_app.test_client()
    editor = {"Authorization": f"Bearer {create_key(guarded_app, 'alice', 'editor')}"}

    assert (
        client.post("/v1/webhooks", json={"url": "https://hooks.example.com/x"}, headers=editor).status_code
        == 201
    )


def test_https_can_be_required(database_url, build_app):
    from tests.conftest import create_key

    app = build_app(database_url, WEBHOOK_REQUIRE_HTTPS=True)
    client = app.test_client()
    editor = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}

    response = client.post("/v1/webhooks", json={"url": "http://127.0.0.1/hook"}, headers=editor)

    assert response.status_code == 422
    assert "https" in response.get_json()["errors"]["url"][0]


def test_a_retried_rotation_returns_the_same_secret(client, editor, receiver, session):
    webhook_id, original = subscribe(client, editor, receiver.url_for("/hook"))
    headers = {**editor, "Idempotency-Key": "rotate-1"}

    first = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=headers)
    retry = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=headers)

    assert first.status_code == retry.status_code == 200
    assert retry.get_json() == first.get_json()
    webhook = session.get(Webhook, webhook_id)
    assert (webhook.secret, webhook.previous_secret) == (first.get_json()["secret"], original)


def test_a_second_rotation_replaces_the_first(client, editor, receiver, session):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    first = client.post(
        f"/v1/webhooks/{webhook_id}/rotate-secret", headers={**editor, "Idempotency-Key": "r1"}
    )

    second = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=editor).get_json()
    stale_retry = client.post(
        f"/v1/webhooks/{webhook_id}/rotate-secret", headers={**editor, "Idempotency-Key": "r1"}
    )

    webhook = session.get(Webhook, webhook_id)
    assert (webhook.secret, webhook.previous_secret) == (second["secret"], first.get_json()["secret"])
    assert stale_retry.status_code == 409  # its secret is no longer the subscription's


def test_a_retried_creation_returns_the_secret_until_it_is_rotated(client, editor, receiver, session):
    headers = {**editor, "Idempotency-Key": "create-hook-1"}
    body = {"url": receiver.url_for("/hook")}
    first = client.post("/v1/webhooks", json=body, headers=headers)

    retry = client.post("/v1/webhooks", json=body, headers=headers)
    client.post(f"/v1/webhooks/{first.get_json()['id']}/rotate-secret", headers=editor)
    after_rotation = client.post("/v1/webhooks", json=body, headers=headers)

    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    from service.models import IdempotencyRecord

    stored = session.scalars(select(IdempotencyRecord)).one()
    assert first.get_json()["secret"] not in stored.response_body  # never stored twice
    assert after_rotation.status_code == 409
    assert "rotate" in after_rotation.get_json()["detail"]
    assert session.scalar(select(func.count()).select_from(Webhook)) == 1


def test_webhook_changes_are_audited_with_actor_and_request_id(client, editor, admin, receiver):
    webhook_id, _ = subscribe(client, editor, receiver.url_for("/hook"))
    client.patch(
        f"/v1/webhooks/{webhook_id}", json={"description": "x"}, headers={**editor, "X-Request-ID": "r-1"}
    )
    client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=editor)
    client.delete(f"/v1/webhooks/{webhook_id}", headers=editor)

    log = client.get(f"/v1/audit?subject=webhook:{webhook_id}", headers=admin).get_json()["items"]

    assert [e["action"] for e in log] == [
        "webhook.deleted",
        "webhook.secret_rotated",
        "webhook.updated",
        "webhook.created",
    ]
    assert {e["actor"] for e in log} == {"alice"}
    assert log[2]["request_id"] == "r-1"
    assert log[2]["details"] == {"description": "x"}
    assert client.get("/v1/audit", headers=editor).status_code == 403
