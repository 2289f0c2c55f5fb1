"""Fixtures: an app on a clean database per test, on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

import os
from datetime import UTC, datetime

import pytest

from service import clock, close_app, create_app, db
from tests.databases import PostgresTemplates, SQLiteTemplates

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])

# Tests run at a fixed moment, whatever the machine's date.
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        from datetime import timedelta

        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    fake = Clock(NOW)
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    found = {"sqlite": SQLiteTemplates(tmp_path_factory.mktemp("sqlite"), NOW)}
    if "postgresql" in BACKENDS:
        found["postgresql"] = PostgresTemplates(os.environ["TEST_DATABASE_URL"], NOW)
    yield found
    if "postgresql" in found:
        found["postgresql"].close()


def _database(request, templates, seeded: bool):
    factory = templates[request.param]
    url = factory.checkout(seeded=seeded)
    yield url
    factory.checkin(url)


@pytest.fixture(params=BACKENDS)
def database_url(request, templates):
    """A clean, migrated and seeded database (see tests/databases.py)."""
    yield from _database(request, templates, seeded=True)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request, templates):
    """A clean, migrated database with no data."""
    yield from _database(request, templates, seeded=False)


TEST_CONFIG = {
    "TESTING": True,
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": True,
    "WEBHOOK_RETRY_SCHEDULE": "0s,0s,0s",
    "WEBHOOK_RETRY_JITTER": 0.0,
    "WRITE_RATE_LIMIT": "100000 per minute",
}


def make_app(database_url: str, **overrides):
    return create_app({**TEST_CONFIG, "DATABASE_URL": database_url, **overrides})


@pytest.fixture
def app(database_url):
    app = make_app(database_url)
    yield app
    close_app(app)


@pytest.fixture
def build_app():
    """`make_app` for a test that needs settings of its own: every app it builds is closed at
    teardown, whether the test passed or not."""
    built = []

    def build(database_url: str, **overrides):
        built.append(make_app(database_url, **overrides))
        return built[-1]

    yield build
    for app in reversed(built):
        close_app(app)


@pytest.fixture
def session(app):
    """A session on the app's database, for assertions beside the HTTP API."""
    with app.app_context(), db.database().sessionmaker() as s:
        yield s


def create_key(app, name: str, role: str) -> str:
    """Create a key through the CLI, as a user would; returns the printed secret."""
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", name, "--role", role])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture
def editor(app):
    return {"Authorization": f"Bearer {create_key(app, 'alice', 'editor')}"}


@pytest.fixture
def admin(app):
    return {"Authorization": f"Bearer {create_key(app, 'root', 'admin')}"}


@pytest.fixture
def reader(app):
    return {"Authorization": f"Bearer {create_key(app, 'rita', 'reader')}"}


def a_source(**overrides):
    return {
        "title": "Revision of Country Group D entries for Vietnam",
        "publisher": "Bureau of Industry and Security",
        "url": "https://www.federalregister.gov/d/2026-99999",
        "published_on": "2026-11-20",
        "citation": "91 FR 99999",
        **overrides,
    }


def a_change(**overrides):
    return {
        "status": "removed",
        "effective_on": "2026-11-20",
        "note": "Final rule removes Vietnam from D:1.",
        "sources": [a_source()],
        **overrides,
    }


def alternating_history(session, country_code: str, start, days: int) -> None:
    """An entry of `country_code` on us-ear-d1, listed and removed on alternate days from `start`
    (listed first), written in one statement: a long history without the API's cost per change."""
    from datetime import timedelta

    from sqlalchemy import insert

    from service.models import Entry, StatusChange

    entry = Entry(
        list_id="us-ear-d1", country_code=country_code, version=1, created_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    session.add(entry)
    session.flush()
    session.execute(
        insert(StatusChange),
        [
            {
                "entry_id": entry.id,
                "from_status": None if i == 0 else ("removed" if i % 2 else "listed"),
                "status": "listed" if i % 2 == 0 else "removed",
                "effective_on": start + timedelta(days=i),
                "recorded_at": datetime(2020, 1, 1, tzinfo=UTC),
                "sources": [a_source()],
            }
            for i in range(days)
        ],
    )
    session.commit()
