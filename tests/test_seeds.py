"""The seed data: real EAR country groups and Vietnam's history, every fact cited, loaded idempotently."""

import csv

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import seeding
from service.db import make_engine
from service.models import ControlList, Entry, Event, StatusChange, Treatment
from service.schemas import SourceSchema


@pytest.fixture
def empty_session(empty_database_url):
    engine = make_engine(empty_database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


# `session` is a database seeded the way `make run` seeds it (the test template runs
# load_seeds on an empty, migrated database), so most tests here only read it.


def counts(session):
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in (ControlList, Entry, StatusChange, Treatment, Event)
    }


def test_loading_twice_changes_nothing(session):
    after_first = counts(session)

    second = seeding.load_seeds(session)

    assert after_first["control_lists"] == 14 and after_first["status_changes"] > 400
    assert (second.lists, second.treatments, second.changes) == (0, 0, 0)
    assert counts(session) == after_first


def test_every_membership_in_the_table_is_seeded(session):
    lists = {cl.id: cl for cl in session.scalars(select(ControlList))}
    columns = {
        "A1": "a1",
        "A2": "a2",
        "A3": "a3",
        "A4": "a4",
        "A5": "a5",
        "A6": "a6",
        "B": "b",
        "D1": "d1",
        "D2": "d2",
        "D3": "d3",
        "D4": "d4",
        "D5": "d5",
        "E1": "e1",
        "E2": "e2",
    }
    entries = {(e.list_id, e.country_code) for e in session.scalars(select(Entry))}

    with (seeding.DEFAULT_SEEDS / "ear_country_groups.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200
    for row in rows:
        for column, suffix in columns.items():
            if row[column] == "X":
                assert (f"us-ear-{suffix}", row["iso2"]) in entries
    assert set(lists) == {f"us-ear-{s}" for s in columns.values()}


def test_every_seeded_change_has_a_source_the_api_would_accept(session):
    source_schema = SourceSchema()

    for change in session.scalars(select(StatusChange)):
        assert change.sources, change.id
        for source in change.sources:
            assert source_schema.validate(source) == {}, source


def test_seeded_history_is_in_the_feed(session):

    changes = session.scalar(select(func.count()).select_from(StatusChange))
    change_events = session.scalar(
        select(func.count()).select_from(Event).where(Event.type == "entry.status_changed")
    )
    list_events = session.scalar(select(func.count()).select_from(Event).where(Event.type == "list.created"))
    assert change_events == changes
    assert list_events == 14


def test_vietnam_history_matches_the_sources(session):
    rows = session.execute(
        select(Entry.list_id, StatusChange.status, StatusChange.effective_on, StatusChange.recorded_at)
        .join(StatusChange.entry)
        .where(Entry.country_code == "VN")
        .order_by(StatusChange.id)
    ).all()

    history = [(r.list_id, r.status, r.effective_on and r.effective_on.isoformat()) for r in rows]
    assert history == [
        ("us-ear-d5", "listed", None),
        ("us-ear-d5", "removed", "2016-11-04"),
        ("us-ear-d1", "listed", None),
        ("us-ear-d3", "listed", None),
        ("us-ear-d1", "pending_removal", "2026-02-20"),
        ("us-ear-d3", "pending_removal", "2026-02-20"),
    ]
    # recorded_at is the earliest source's publication date
    assert rows[1].recorded_at.date().isoformat() == "2016-11-04"
    assert rows[4].recorded_at.date().isoformat() == "2026-02-21"


def test_an_unknown_source_id_is_refused(tmp_path, empty_session):
    for name in ("sources.yaml", "lists.yaml", "ear_country_groups.csv"):
        (tmp_path / name).write_text((seeding.DEFAULT_SEEDS / name).read_text())
    (tmp_path / "history.yaml").write_text(
        "changes:\n  - {country: VN, list: us-ear-d2, status: listed, effective_on: null, sources: [nope]}\n"
    )

    with pytest.raises(seeding.SeedError, match="nope"):
        seeding.load_seeds(empty_session, tmp_path)
