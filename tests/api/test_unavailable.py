"""With its database away the service answers 503 problem+json everywhere, and recovers by itself."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service import close_app
from tests.conftest import BACKENDS, a_change, make_app

PROBLEM = "application/problem+json"


class AbsentDatabase:
    """A database URL that cannot be reached yet, and a way to bring the database there."""

    def __init__(self, templates, backend: str, tmp_path: Path):
        self.factory = templates[backend]
        self.backend = backend
        self.ready = self.factory.create(seeded=True)
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'not-yet' / 'exportctl.sqlite3'}"
        else:
            self.url = (
                make_url(self.ready)
                .set(database=make_url(self.ready).database + "_away")
                .render_as_string(hide_password=False)
            )

    def arrive(self) -> None:
        if self.backend == "sqlite":
            target = Path(make_url(self.url).database)
            target.parent.mkdir()
            shutil.move(make_url(self.ready).database, target)
        else:
            old, new = make_url(self.ready).database, make_url(self.url).database
            self.factory._execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
        self.ready = self.url

    def drop(self) -> None:
        self.factory.drop(self.ready)


@pytest.fixture(params=BACKENDS)
def absent(request, templates, tmp_path):
    database = AbsentDatabase(templates, request.param, tmp_path)
    yield database
    database.drop()


@pytest.fixture
def cold_app(absent):
    app = make_app(absent.url)  # the app starts although its database cannot be reached
    yield app
    close_app(app)


READS = [
    "/v1/countries/VN",
    "/v1/countries/VN/history",
    "/v1/countries",
    "/v1/lists",
    "/v1/lists/us-ear-d1",
    "/v1/lists/us-ear-d1/entries",
    "/v1/lists/us-ear-d1/entries/VN",
    "/v1/events",
    "/v1/events/evt_1",
    "/v1/events.atom",
    "/healthz",
]


@pytest.mark.parametrize("url", READS)
def test_reads_answer_503_while_the_database_is_away(cold_app, url):
    response = cold_app.test_client().get(url)

    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.content_type == PROBLEM
    assert response.get_json()["status"] == 503
    assert int(response.headers["Retry-After"]) > 0


def test_writes_answer_503_while_the_database_is_away(cold_app):
    client = cold_app.test_client()
    headers = {"Authorization": "Bearer exk_whatever"}

    for response in (
        client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=headers),
        client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=headers),
        client.get("/v1/audit", headers=headers),
    ):
        assert response.status_code == 503, response.get_data(as_text=True)[:300]
        assert response.content_type == PROBLEM


def test_the_service_recovers_by_itself_when_the_database_comes_back(cold_app, absent):
    client = cold_app.test_client()
    assert client.get("/v1/countries/VN").status_code == 503
    assert client.get("/healthz").status_code == 503

    absent.arrive()

    assert client.get("/healthz").status_code == 200
    response = client.get("/v1/countries/VN")
    assert response.status_code == 200
    assert response.get_json()["country"]["alpha_2"] == "VN"
    assert client.get("/v1/events").status_code == 200


def test_an_error_closing_the_session_at_teardown_is_not_a_bare_500(app, client, monkeypatch):
    """The database dropping under the request's session as it closes: the answer stands."""

    def broken_close(self):
        raise OperationalError("ROLLBACK", None, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(Session, "close", broken_close)

    response = client.get("/v1/countries/VN")

    assert response.status_code in (200, 503)
    assert response.content_type in ("application/json", PROBLEM)


def test_nothing_the_app_runs_escapes_as_a_non_problem_response(app, client, monkeypatch):
    """Even a failure outside every handler (here in an after-request hook) answers problem+json."""

    def explode(_response):
        raise RuntimeError("boom")

    app.after_request_funcs.setdefault(None, []).append(explode)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    response = client.get("/v1/lists")

    assert response.status_code == 500
    assert response.content_type == PROBLEM
    assert "boom" not in response.get_data(as_text=True)


def test_the_version_check_reconnects_after_the_database_restarts(app, client):
    """A lookup's version check holds its own connection: a server restart must not make it 500."""
    assert client.get("/v1/countries/VN").status_code == 200
    reader = app.extensions["exportctl.version"]
    reader.local.connection.close()  # as a restarted server leaves it

    assert client.get("/v1/countries/VN").status_code == 200
    with app.app_context():
        from service import db

        with db.database().engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
