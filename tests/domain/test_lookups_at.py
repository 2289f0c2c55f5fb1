"""A lookup reads only the changes that decide its answer (`lookups._entries_at`); it must answer
exactly as reading the entry's whole history does, for any history, date and `known_at`."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import json
from sqlalchemy import select

from service import clock, close_app, db
from service.api.countries import lists_checked
from service.api.rendering import own_reads
from service.domain import lookups
from service.domain.countries import registry
from service.domain.timeline import ordered, visible
from service.models import ControlList, Entry, Observation, StatusChange, Treatment
from service.schemas import CountryStatusSchema
from tests.conftest import make_app

STATUSES = ["listed", "pending_removal", "removed", "pending_addition"]
OBSERVED = ["listed", "pending_removal", "removed", "pending_addition", "not_listed"]
START = date(2000, 1, 1)
SOURCE = {"title": "T", "publisher": "P", "url": "https://www.federalregister.gov/d/1", "published_on": None}


def _moment(rng: random.Random) -> datetime:
    return datetime(2000, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(24 * 365 * 12))


def _history(session, entry: Entry, rng: random.Random) -> None:
    """Any history: same-day changes, runs of one status, backdated corrections, undated changes and
    observations, recorded in any order (the rules of transitions do not matter to a lookup)."""
    for i in range(rng.randrange(0, 25)):
        pending = rng.random() < 0.4
        status = rng.choice(STATUSES[1::2] if pending else STATUSES[0::2])
        session.add(
            StatusChange(
                entry_id=entry.id,
                from_status=rng.choice([None, *STATUSES]),
                status=status,
                effective_on=None
                if rng.random() < 0.1
                else START + timedelta(days=rng.randrange(0, 4000, 7)),
                expected_effective_on=START + timedelta(days=rng.randrange(4000)) if pending else None,
                recorded_at=_moment(rng),
                note=f"change {i}",
                sources=[SOURCE],
            )
        )
    for i in range(rng.randrange(0, 6)):
        session.add(
            Observation(
                entry_id=entry.id,
                status=rng.choice(OBSERVED),
                observed_on=START + timedelta(days=rng.randrange(0, 4000, 7)),
                recorded_at=_moment(rng),
                note=f"observation {i}",
                sources=[SOURCE],
            )
        )


def _lists_and_histories(session, rng: random.Random) -> list[ControlList]:
    """Three lists (complete, not complete, complete from a date), each with an entry of any
    history for VN, CN and FR."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lists = []
    for n, complete in enumerate([True, False, True]):
        control_list = ControlList(
            id=f"list-{n}",
            code=f"L{n}",
            name=f"List {n}",
            jurisdiction="US",
            authority="A",
            legal_basis="B",
            url="https://example.org/",
            effect="restrictive",
            membership_complete=complete,
            membership_complete_from=START + timedelta(days=2000) if n == 2 else None,
            sources=[SOURCE] if n == 0 else [],
            recorded_at=datetime(2003, 1, 1, tzinfo=UTC),
            updated_at=now,
        )
        session.add(control_list)
        lists.append(control_list)
    session.flush()
    for code in ("VN", "CN", "FR"):
        for control_list in lists:
            entry = Entry(list_id=control_list.id, country_code=code, version=0, created_at=now)
            session.add(entry)
            session.flush()
            _history(session, entry, rng)
    # Hong Kong takes China's status on the first two lists, from a date (recorded later).
    for control_list in lists[:2]:
        session.add(
            Treatment(
                list_id=control_list.id,
                country_code="HK",
                treated_as="CN",
                effective_on=START + timedelta(days=1500),
                recorded_at=datetime(2005, 6, 1, tzinfo=UTC),
                note="Treated as China.",
                sources=[SOURCE],
            )
        )
    session.commit()
    return lists


@pytest.mark.parametrize("seed", range(3))
def test_a_lookup_at_a_date_answers_as_the_whole_history_does(empty_database_url, seed):
    rng = random.Random(seed)
    app = make_app(empty_database_url)
    try:
        with app.app_context(), db.database().sessionmaker() as session:
            lists = _lists_and_histories(session, rng)
            whole = lookups._changes_for(session, ["VN", "CN", "FR"])
            for _ in range(60):
                as_of = START + timedelta(days=rng.randrange(-30, 4100))
                known_at = None if rng.random() < 0.3 else _moment(rng)
                for code in ("VN", "CN", "FR"):
                    reduced = lookups.changes_at(session, [code], as_of, known_at)
                    # The same read on a connection of the thread's own (compiled once, the rows
                    # converted by the columns' types as SQLAlchemy converts them).
                    own = lookups.changes_at(session, [code], as_of, known_at, reads=own_reads())
                    for control_list in lists:
                        expected = whole.answer(control_list, code, as_of, known_at)
                        where = (code, control_list.id, as_of, known_at)
                        assert reduced.answer(control_list, code, as_of, known_at) == expected, where
                        assert own.answer(control_list, code, as_of, known_at) == expected, where
            # An entry's history, a page at a time, is its whole history newest first.
            for entry in session.scalars(select(Entry)):
                known_at = None if rng.random() < 0.5 else _moment(rng)
                expected = sorted(
                    [*ordered(entry.changes, known_at), *visible(entry.observations, known_at)],
                    key=lookups.history_key,
                    reverse=True,
                )
                walked, cursor = [], None
                while True:
                    page, cursor = lookups._entry_history(
                        session, entry, entry.control_list, known_at, limit=3, cursor=cursor
                    )
                    walked += [(item["kind"], item["id"]) for item in page]
                    if cursor is None:
                        break
                kinds = [("observation" if isinstance(i, Observation) else "change", i.id) for i in expected]
                assert walked == kinds
    finally:
        close_app(app)


@pytest.mark.parametrize("seed", range(2))
def test_the_lookup_serves_the_bytes_of_the_whole_history_answer_for_any_date(empty_database_url, seed):
    """GET /v1/countries/{code} assembles its body from each list's answer rendered once per decision
    (`countries.country_body`): for any date, moment and list filter, asked in any order of one
    process (so that answers rendered for other dates are reused), the body is exactly the dump of
    the answer read from every list's whole history."""
    rng = random.Random(seed)
    app = make_app(empty_database_url)
    try:
        client = app.test_client()
        with app.app_context(), db.database().sessionmaker() as session:
            lists = _lists_and_histories(session, rng)
            # A note that reads like the link an answer is kept with, cut out (countries.ANY_COUNTRY).
            for change in session.scalars(select(StatusChange).where(StatusChange.note == "change 0")):
                change.note = "/v1/lists/list-0/entries/@@"
            session.commit()
            whole = lookups._changes_for(session, ["VN", "CN", "FR", "HK", "DE"])
            for _ in range(150):
                code = rng.choice(["VN", "CN", "FR", "HK", "DE"])
                as_of = START + timedelta(days=rng.randrange(-30, 4100))
                known_at = None if rng.random() < 0.3 else _moment(rng)
                chosen = None if rng.random() < 0.7 else rng.sample([cl.id for cl in lists], 2)
                query = f"as_of={as_of.isoformat()}"
                if known_at is not None:
                    query += f"&known_at={known_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                query += "".join(f"&list={list_id}" for list_id in chosen or [])
                response = client.get(f"/v1/countries/{code}?{query}")
                assert response.status_code == 200, response.json
                country = registry().get(code)
                shown = [cl for cl in lookups.by_jurisdiction(lists) if chosen is None or cl.id in chosen]
                answers = [whole.answer(cl, code, as_of, known_at) for cl in shown]
                expected = lookups.status_summary(country, as_of, known_at, answers)
                expected["lists_checked"] = [
                    checked
                    for checked in lists_checked(session, None, clock.utcnow(), known_at)
                    if chosen is None or checked["list_id"] in chosen
                ]
                assert response.data == json.dumps(CountryStatusSchema().dump(expected)).encode(), query
    finally:
        close_app(app)


def test_a_country_with_no_entry_is_decided_as_an_empty_history_is(empty_database_url):
    """Most lists hold no entry for most countries; those are decided without a timeline to sort,
    and must say what an empty one says: absent, or unknown and why."""
    rng = random.Random(7)
    app = make_app(empty_database_url)
    try:
        with app.app_context(), db.database().sessionmaker() as session:
            lists = _lists_and_histories(session, rng)
            seen = set()
            for _ in range(400):
                as_of = START + timedelta(days=rng.randrange(-30, 4100))
                known_at = None if rng.random() < 0.3 else _moment(rng)
                for control_list in lists:
                    expected = lookups.decide(control_list, (), as_of, known_at)
                    found = lookups.decide_unrecorded(control_list, as_of, known_at)
                    assert found == expected, (control_list.id, as_of, known_at)
                    seen.add(found.key[:2])
            assert seen == {
                ("absent",),
                ("unknown", "membership_not_complete"),
                ("unknown", "not_yet_known"),
                ("unknown", "before_membership_complete"),
            }
    finally:
        close_app(app)
