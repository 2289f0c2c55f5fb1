"""Pages when reads need a key: a sign-in session (signed, HttpOnly, SameSite), CSRF on both forms."""

import re

import pytest

from service import close_app
from tests.conftest import create_key, make_app

COOKIE = "exportctl_session"


@pytest.fixture
def app(database_url):
    app = make_app(database_url, READS_REQUIRE_KEY=True, SECRET_KEY="test-secret-key")
    yield app
    close_app(app)


@pytest.fixture
def key(app):
    return create_key(app, "rita", "reader")


def csrf_token(client, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def sign_in(client, key: str, next_url: str = "/countries/VN"):
    token = csrf_token(client, f"/signin?next={next_url}")
    return client.post("/signin", data={"csrf_token": token, "key": key, "next": next_url})


def test_pages_send_a_visitor_without_a_session_to_sign_in(client):
    response = client.get("/countries/VN?as_of=2016-11-03")

    assert response.status_code == 302
    assert response.headers["Location"] == "/signin?next=/countries/VN?as_of%3D2016-11-03"
    assert client.get("/signin").status_code == 200
    with client.get("/static/pages.css") as css, client.get("/docs/swagger/") as swagger:
        assert css.status_code == 200 and swagger.status_code == 200


def test_signing_in_sets_a_signed_httponly_samesite_cookie_without_the_key(client, key):
    response = sign_in(client, key)

    assert response.status_code == 303
    assert response.headers["Location"] == "/countries/VN"
    header = response.headers["Set-Cookie"]
    assert header.startswith(f"{COOKIE}=")
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert key not in header and key.removeprefix("exk_") not in header
    page = client.get("/countries/VN")
    assert page.status_code == 200
    assert "Signed in as <strong>rita</strong>" in page.get_data(as_text=True)


def test_the_session_is_not_an_api_credential(client, key):
    sign_in(client, key)

    assert client.get("/v1/countries/VN").status_code == 401


def test_sign_in_without_a_csrf_token_is_refused(client, key):
    response = client.post("/signin", data={"key": key, "next": "/"})

    assert response.status_code == 400
    assert client.get_cookie(COOKIE) is None or client.get("/countries/VN").status_code == 302


def test_sign_in_with_a_forged_csrf_token_is_refused(client, key):
    response = client.post("/signin", data={"csrf_token": "forged", "key": key})

    assert response.status_code == 400
    assert client.get("/countries/VN").status_code == 302


def test_a_wrong_key_is_refused(client, key):
    response = sign_in(client, "exk_wrong")

    assert response.status_code == 401
    assert "not valid" in response.get_data(as_text=True)
    assert client.get("/countries/VN").status_code == 302


def test_a_missing_key_is_refused(client, key):
    response = sign_in(client, "")

    assert response.status_code == 422
    assert client.get("/countries/VN").status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(client, key, target):
    response = sign_in(client, key, next_url=target)

    assert response.headers["Location"] == "/"


def test_signing_out_needs_the_csrf_token_and_ends_the_session(client, key):
    sign_in(client, key)

    refused = client.post("/signout", data={})
    assert refused.status_code == 400
    assert client.get("/countries/VN").status_code == 200

    token = csrf_token(client, "/signout")
    response = client.post("/signout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/signin"
    assert client.get("/countries/VN").status_code == 302


def test_a_revoked_key_loses_its_session(app, client, key):
    sign_in(client, key)
    assert app.test_cli_runner().invoke(args=["keys", "revoke", "rita"]).exit_code == 0

    assert client.get("/countries/VN").status_code == 302


def test_a_bearer_key_also_opens_the_pages(client, key):
    assert client.get("/countries/VN", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_protected_pages_are_private_to_caches(client, key):
    sign_in(client, key)
    response = client.get("/countries/VN")

    assert response.headers["Cache-Control"] == "private, no-cache"
    assert "Cookie" in response.headers["Vary"]


def test_a_signed_in_page_is_private_to_caches_when_reads_are_public_too(build_app, database_url):
    """It names who is signed in: a shared cache must not keep it, even for the same cookie."""
    public_app = build_app(database_url, SECRET_KEY="test-secret-key")
    client = public_app.test_client()
    anonymous = client.get("/countries/VN")
    sign_in(client, create_key(public_app, "rita", "reader"))

    signed_in = client.get("/countries/VN")

    assert anonymous.headers["Cache-Control"] == "no-cache"
    assert signed_in.status_code == 200
    assert "rita" in signed_in.get_data(as_text=True)
    assert signed_in.headers["Cache-Control"] == "private, no-cache"
    assert "Cookie" in signed_in.headers["Vary"]


@pytest.mark.parametrize("path", ["/countries/XX", "/countries/VN?as_of=yesterday", "/signin"])
def test_error_pages_and_the_sign_in_form_are_private_to_caches(build_app, database_url, path):
    """An error page names who is signed in too, and the sign-in form carries a token for this
    session: a shared cache must keep neither (second outside probe)."""
    public_app = build_app(database_url, SECRET_KEY="test-secret-key")
    client = public_app.test_client()
    if path != "/signin":
        sign_in(client, create_key(public_app, "rita", "reader"))

    response = client.get(path)

    assert response.status_code in (200, 404, 422)
    assert response.headers["Cache-Control"] == "private, no-cache"
