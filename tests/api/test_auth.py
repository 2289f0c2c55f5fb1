"""API keys: created, listed and revoked with the CLI; roles enforced on every write."""

import pytest

from service import close_app
from tests.conftest import a_change, create_key, make_app

PROBLEM = "application/problem+json"
D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def test_keys_are_printed_once_and_listed_without_secrets(app):
    runner = app.test_cli_runner()
    secret = create_key(app, "alice", "editor")

    listing = runner.invoke(args=["keys", "list"])

    assert secret.startswith("exk_") and len(secret) > 40
    assert listing.exit_code == 0
    assert "alice" in listing.stdout and "editor" in listing.stdout
    assert secret not in listing.stdout
    assert secret[len("exk_") + 6 :] not in listing.stdout


def test_the_database_holds_only_a_hash(app, session):
    from service.models import ApiKey

    secret = create_key(app, "alice", "editor")

    stored = session.query(ApiKey).one()
    assert secret not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


def test_a_duplicate_active_name_is_refused(app):
    create_key(app, "alice", "editor")

    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", "alice", "--role", "admin"])

    assert result.exit_code != 0
    assert "already named" in result.output


def test_a_bad_role_is_refused_by_the_cli(app):
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", "x", "--role", "god"])

    assert result.exit_code != 0


def test_a_revoked_key_stops_working_at_once(app, client):
    headers = {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}
    assert client.post(D1_VN, json=a_change(), headers=headers).status_code == 201

    result = app.test_cli_runner().invoke(args=["keys", "revoke", "alice"])
    response = client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=headers)

    assert result.exit_code == 0
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert app.test_cli_runner().invoke(args=["keys", "revoke", "alice"]).exit_code != 0


def test_revoking_frees_the_name(app):
    create_key(app, "alice", "editor")
    app.test_cli_runner().invoke(args=["keys", "revoke", "alice"])

    assert create_key(app, "alice", "admin").startswith("exk_")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer exk_not-a-real-key",
        "Bearer nonsense",
        "exk_abc",
    ],
)
def test_missing_or_bad_credentials_are_401_with_www_authenticate(client, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = client.post(D1_VN, json=a_change(), headers=headers)

    assert response.status_code == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="exportctl"')


def test_a_reader_key_may_not_write(client, reader):
    response = client.post(D1_VN, json=a_change(), headers=reader)

    assert response.status_code == 403
    assert response.content_type == PROBLEM
    assert response.get_json()["type"] == "/problems/forbidden"


def test_authentication_comes_before_body_validation(client):
    assert client.post(D1_VN, json={"nonsense": True}).status_code == 401


def test_reads_are_public_by_default(client):
    assert client.get("/v1/countries/VN").status_code == 200


@pytest.fixture
def locked_app(database_url):
    app = make_app(database_url, READS_REQUIRE_KEY=True)
    yield app
    close_app(app)


def test_reads_can_be_made_to_require_a_reader_key(locked_app):
    client = locked_app.test_client()
    key = create_key(locked_app, "rita", "reader")

    anonymous = client.get("/v1/countries/VN")
    bad = client.get("/v1/countries/VN", headers={"Authorization": "Bearer exk_wrong"})
    with_key = client.get("/v1/countries/VN", headers={"Authorization": f"Bearer {key}"})

    assert anonymous.status_code == 401
    assert anonymous.content_type == PROBLEM
    assert bad.status_code == 401
    assert with_key.status_code == 200
    assert client.get("/healthz").status_code == 200  # health and the spec stay public
    assert client.get("/openapi.yaml").status_code == 200


@pytest.fixture
def limited_app(database_url):
    app = make_app(database_url, WRITE_RATE_LIMIT="2 per minute")
    yield app
    close_app(app)


def test_writes_are_rate_limited_per_key_with_retry_after(limited_app):
    client = limited_app.test_client()
    alice = {"Authorization": f"Bearer {create_key(limited_app, 'alice', 'editor')}"}
    bob = {"Authorization": f"Bearer {create_key(limited_app, 'bob', 'editor')}"}
    bodies = [a_change(status="removed"), a_change(status="listed", effective_on="2026-11-21")]

    statuses = [client.post(D1_VN, json=body, headers=alice).status_code for body in bodies]
    limited = client.post(D1_VN, json=a_change(status="removed", effective_on="2026-11-22"), headers=alice)
    other_key = client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=bob)

    assert statuses == [201, 201]
    assert limited.status_code == 429
    assert limited.content_type == PROBLEM
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert other_key.status_code == 201


def test_a_bad_key_is_refused_even_on_a_public_read(client, reader):
    bad = client.get("/v1/countries/FR", headers={"Authorization": "Bearer exk_mistyped"})
    good = client.get("/v1/countries/FR", headers=reader)

    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    assert good.status_code == 200


def test_rate_limits_are_shared_between_processes_through_redis(database_url, build_app):
    """Two apps (as two gunicorn workers) with redis storage draw on one budget per key."""
    import uuid

    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379 (the machine's services provide one)")
    # A namespace of its own, so no other run's counts in the same Redis can interfere.
    settings = {
        "WRITE_RATE_LIMIT": "2 per minute",
        "RATELIMIT_STORAGE_URI": url,
        "RATELIMIT_NAMESPACE": uuid.uuid4().hex,
    }
    first, second = build_app(database_url, **settings), build_app(database_url, **settings)
    key = {"Authorization": f"Bearer {create_key(first, f'shared-{uuid.uuid4().hex[:8]}', 'editor')}"}

    statuses = [
        first.test_client().post(D1_VN, json=a_change(), headers=key).status_code,
        second.test_client()
        .post(D1_VN, json=a_change(status="listed", effective_on="2026-11-21"), headers=key)
        .status_code,
        first.test_client().post(D1_VN, json=a_change(effective_on="2026-11-22"), headers=key).status_code,
    ]

    assert statuses == [201, 201, 429]
