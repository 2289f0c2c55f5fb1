"""The engine's pool: a connection back a moment ago is used as it is; an idle one is pinged first."""

import pytest
from sqlalchemy import text

from service import db


@pytest.fixture
def engine(database_url, monkeypatch):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to lose a connection to")
    engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    engine.pings = pings
    yield engine
    engine.dispose()


def backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_back_a_moment_ago_is_used_without_a_round_trip_to_ping_it(engine):
    first = backend_pid(engine)

    assert backend_pid(engine) == first
    assert engine.pings == []


def test_an_idle_connection_is_pinged_and_one_the_server_dropped_is_replaced(engine, monkeypatch):
    lost = backend_pid(engine)
    admin = db.make_engine(engine.url.render_as_string(hide_password=False))
    with admin.begin() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost})
    admin.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # as if it had sat in the pool a while

    replaced = backend_pid(engine)

    assert replaced != lost
    assert engine.pings  # the lost one was found by a ping, not by the request's statement


def test_a_lookups_long_statement_is_not_parsed_again_at_every_read(app, client, database_url, monkeypatch):
    """psycopg caches its conversion of a query's %(name)s placeholders only for queries under 4 KB;
    a lookup's statement is longer, and parsing it again cost ~50 us of CPU per lookup."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's placeholders need no conversion")
    from psycopg import _queries

    converted = []
    convert = _queries._query2pg_nocache
    monkeypatch.setattr(
        _queries,
        "_query2pg_nocache",
        lambda query, encoding: converted.append(query) or convert(query, encoding),
    )
    assert client.get("/v1/countries/VN?as_of=2026-01-01").status_code == 200

    answer = client.get("/v1/countries/VN?as_of=2026-03-01&known_at=2026-02-21T00:00:00Z")

    assert answer.status_code == 200
    by_list = {entry["list"]["id"]: entry for entry in answer.json["entries"]}
    assert by_list["us-ear-d1"]["status"] == "pending_removal"  # its parameters still reach it in order
    assert converted == []
