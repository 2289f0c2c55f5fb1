"""GET /metrics: Prometheus text with request, cache and delivery metrics; off or protected by config."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import close_app
from tests.conftest import a_change, make_app

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def samples(response) -> dict:
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_by_route_and_status_with_latency(client):
    client.get("/v1/countries/VN")
    client.get("/v1/countries/FR")
    client.get("/v1/countries/XX-nonsense")

    found = samples(client.get("/metrics"))

    ok = (("method", "GET"), ("route", "/v1/countries/<ref>"), ("status", "200"))
    missing = (("method", "GET"), ("route", "/v1/countries/<ref>"), ("status", "404"))
    assert found[("exportctl_http_requests_total", ok)] == 2
    assert found[("exportctl_http_requests_total", missing)] == 1
    count = found[
        (
            "exportctl_http_request_duration_seconds_count",
            (("method", "GET"), ("route", "/v1/countries/<ref>")),
        )
    ]
    assert count == 3


def test_metrics_count_cache_hits_and_misses(client):
    client.get("/v1/countries/VN")
    client.get("/v1/countries/VN")

    found = samples(client.get("/metrics"))

    assert found[("exportctl_document_cache_lookups_total", (("result", "miss"),))] >= 1
    assert found[("exportctl_document_cache_lookups_total", (("result", "hit"),))] >= 1


def test_metrics_show_webhook_deliveries_queue_depth_and_lag(client, editor, frozen_clock):
    assert (
        client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=editor).status_code
        == 201
    )
    assert client.post(D1_VN, json=a_change(), headers=editor).status_code == 201
    frozen_clock.advance(seconds=30)

    found = samples(client.get("/metrics"))

    assert found[("exportctl_webhook_deliveries", (("state", "pending"),))] >= 1
    assert found[("exportctl_webhook_queue_depth", ())] >= 1
    assert found[("exportctl_webhook_delivery_lag_seconds", ())] >= 30


@pytest.fixture
def protected_app(database_url):
    app = make_app(database_url, METRICS_TOKEN="s3cret-metrics")
    yield app
    close_app(app)


def test_metrics_can_be_protected_by_a_token(protected_app):
    client = protected_app.test_client()

    anonymous = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})

    assert anonymous.status_code == 401
    assert anonymous.content_type == "application/problem+json"
    assert wrong.status_code == 401
    assert right.status_code == 200


def test_metrics_can_be_turned_off(database_url):
    app = make_app(database_url, METRICS=False)
    try:
        assert app.test_client().get("/metrics").status_code == 404
    finally:
        close_app(app)
