"""The seed data: real EAR country groups and Vietnam's history, every fact cited, loaded idempotently."""

import csv
import shutil
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import seeding
from service.db import make_engine
from service.models import ControlList, Entry, Event, Observation, StatusChange, Treatment
from service.schemas import SourceSchema


@pytest.fixture
def empty_session(empty_database_url):
    engine = make_engine(empty_database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


# `session` is a database seeded the way `make run` seeds it (the test template runs
# load_seeds on an empty, migrated database), so most tests here only read it.


TABLE_DATE = date(2026, 7, 23)


def counts(session):
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in (ControlList, Entry, StatusChange, Observation, Treatment, Event)
    }


def test_loading_twice_changes_nothing(session):
    after_first = counts(session)

    second = seeding.load_seeds(session)

    assert after_first["control_lists"] == 19 and after_first["observations"] > 500
    assert (second.lists, second.treatments, second.changes, second.observations) == (0, 0, 0, 0)
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
    observed = {
        (e.list_id, e.country_code)
        for e in session.scalars(
            select(Entry).join(Entry.observations).where(Observation.observed_on == TABLE_DATE)
        )
    }

    with (seeding.DEFAULT_SEEDS / "reference" / "ear_country_groups.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200
    for row in rows:
        for column, suffix in columns.items():
            # An X is an observation of the membership on the table's date, never an undated change.
            assert ((f"us-ear-{suffix}", row["iso2"]) in observed) == (row[column] == "X")
    assert {f"us-ear-{s}" for s in columns.values()} <= set(lists)
    assert session.scalar(select(func.count()).where(StatusChange.effective_on.is_(None))) == 0


def test_every_seeded_fact_has_a_source_the_api_would_accept_with_its_kind(session):
    source_schema = SourceSchema()

    for fact in [*session.scalars(select(StatusChange)), *session.scalars(select(Observation))]:
        assert fact.sources, fact.id
        for source in fact.sources:
            assert source_schema.validate(source) == {}, source
            assert source["kind"], source


def test_seeded_history_is_in_the_feed(session):

    changes = session.scalar(select(func.count()).select_from(StatusChange))
    change_events = session.scalar(
        select(func.count()).select_from(Event).where(Event.type == "entry.status_changed")
    )
    list_events = session.scalar(select(func.count()).select_from(Event).where(Event.type == "list.created"))
    assert change_events == changes  # observations change no status: no event
    assert list_events == 19


def test_vietnam_history_matches_the_sources(session):
    rows = session.execute(
        select(Entry.list_id, StatusChange.status, StatusChange.effective_on, StatusChange.recorded_at)
        .join(StatusChange.entry)
        .where(Entry.country_code == "VN")
        .order_by(StatusChange.id)
    ).all()

    history = [(r.list_id, r.status, r.effective_on and r.effective_on.isoformat()) for r in rows]
    assert history == [
        ("us-ear-d5", "removed", "2016-11-04"),
        ("us-ear-d1", "pending_removal", "2026-02-20"),
        ("us-ear-d3", "pending_removal", "2026-02-20"),
        ("us-itar-126-1", "removed", "2016-09-29"),
    ]
    # recorded_at is the earliest source's publication date
    assert rows[0].recorded_at.date().isoformat() == "2016-11-04"
    assert rows[1].recorded_at.date().isoformat() == "2026-02-21"
    observations = session.execute(
        select(Entry.list_id, Observation.observed_on)
        .join(Observation.entry)
        .where(Entry.country_code == "VN", Entry.list_id == "us-ear-d1")
        .order_by(Observation.observed_on)
    ).all()
    assert [o.observed_on.isoformat() for o in observations] == ["2025-05-29", "2025-11-14", "2026-07-23"]


def test_an_unknown_source_id_is_refused(tmp_path, empty_session):
    shutil.copytree(seeding.DEFAULT_SEEDS, tmp_path, dirs_exist_ok=True)
    (tmp_path / "history.yaml").write_text(
        "changes:\n  - {country: VN, list: us-ear-d2, status: listed, effective_on: null, sources: [nope]}\n"
    )

    with pytest.raises(seeding.SeedError, match="nope"):
        seeding.load_seeds(empty_session, tmp_path)
