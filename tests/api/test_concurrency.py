"""Concurrent writers, with real HTTP requests to a threaded server: nothing lost, nothing doubled."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from service import db
from service.domain import lookups
from service.domain.changes import bump_version
from service.domain.countries import registry
from service.domain.errors import ConcurrentUpdate
from service.models import Entry, StatusChange
from tests.conftest import a_change

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"
WRITERS = 8


@pytest.fixture
def live_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def race(count, send):
    """Start `count` requests at the same moment; their responses, in order."""
    barrier = threading.Barrier(count)

    def go(index):
        barrier.wait()
        return send(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(go, range(count)))


def changes_on(session, list_id, country):
    session.expire_all()
    return session.scalar(
        select(func.count())
        .select_from(StatusChange)
        .join(StatusChange.entry)
        .where(Entry.list_id == list_id, Entry.country_code == country)
    )


def test_of_concurrent_writers_from_the_same_version_exactly_one_succeeds(live_url, editor, session):
    etag = requests.get(f"{live_url}/v1/lists/us-ear-d1/entries/VN", timeout=10).headers["ETag"]
    before = changes_on(session, "us-ear-d1", "VN")

    responses = race(
        WRITERS,
        lambda i: requests.post(
            live_url + D1_VN,
            json=a_change(note=f"writer {i}"),
            headers={**editor, "If-Match": etag},
            timeout=60,
        ),
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [412] * (WRITERS - 1), [
        r.text for r in responses if r.status_code not in (201, 412)
    ]
    assert changes_on(session, "us-ear-d1", "VN") == before + 1


def test_concurrent_writers_without_if_match_are_serialised_not_lost(live_url, editor, session):
    before = changes_on(session, "us-ear-d1", "VN")

    # Restating a pending removal is legal from pending_removal, so every writer may succeed;
    # none may be lost and the version must count them all.
    responses = race(
        WRITERS,
        lambda i: requests.post(
            live_url + D1_VN,
            json=a_change(status="pending_removal", effective_on=f"2026-11-0{i + 1}"),
            headers=editor,
            timeout=60,
        ),
    )

    assert [r.status_code for r in responses] == [201] * WRITERS, [
        r.text for r in responses if r.status_code != 201
    ]
    versions = sorted(r.json()["entry"]["version"] for r in responses)
    assert versions == list(range(5, 5 + WRITERS))  # VN D:1 is at version 4
    assert changes_on(session, "us-ear-d1", "VN") == before + WRITERS


def test_concurrent_retries_with_one_idempotency_key_record_once(live_url, editor, session):
    before = changes_on(session, "us-ear-d1", "VN")

    responses = race(
        WRITERS,
        lambda _i: requests.post(
            live_url + D1_VN, json=a_change(), headers={**editor, "Idempotency-Key": "same-key"}, timeout=60
        ),
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["change"]["id"] for r in responses}) == 1
    assert changes_on(session, "us-ear-d1", "VN") == before + 1


def test_a_version_read_before_another_writer_committed_no_longer_matches(app):
    """The mechanism under every write: the conditional version bump, on either backend."""
    country = registry().get("VN")
    with app.app_context():
        maker = db.database().sessionmaker
        with maker() as first, maker() as second:
            first_entry = lookups.find_entry(first, lookups.get_list(first, "us-ear-d1"), country)
            second_entry = lookups.find_entry(second, lookups.get_list(second, "us-ear-d1"), country)
            assert first_entry.version == second_entry.version == 4

            bump_version(first, first_entry)
            first.commit()

            with pytest.raises(ConcurrentUpdate):
                bump_version(second, second_entry)
            second.rollback()
            assert lookups.find_entry(second, lookups.get_list(second, "us-ear-d1"), country).version == 5


def test_of_concurrent_approvals_of_one_proposal_exactly_one_records(
    app, live_url, editor, session, frozen_clock
):
    from service.models import Proposal
    from tests.importers.helpers import ECFR_DECEMBER, import_ecfr

    frozen_clock.advance(days=9)
    assert import_ecfr(app, ECFR_DECEMBER, "2026-12-01").exit_code == 0
    proposal_id = session.scalar(select(Proposal.id))
    before = changes_on(session, "us-ear-d1", "VN")

    responses = race(
        WRITERS,
        lambda _i: requests.post(
            f"{live_url}/v1/proposals/{proposal_id}/approve", headers=editor, timeout=30
        ),
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (WRITERS - 1), [r.text for r in responses]
    assert all(r.json()["state"] == "approved" for r in responses if r.status_code == 409)
    assert changes_on(session, "us-ear-d1", "VN") == before + 1
