"""A write reads only a change's neighbourhood: on it, the rules answer as on the whole timeline.

Random timelines (undated changes, several changes on one date, runs of one status,
observations before and after the first dated change) are written to the database;
for every date around them, `place` and `lookups.answer` on `neighbourhood` must equal
them on every change and observation of the entry.
"""

import random
from datetime import UTC, date, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import select

from service.domain import lookups
from service.domain.changes import Recorded, neighbourhood
from service.domain.statuses import OBSERVABLE, Status
from service.domain.timeline import ordered, place, visible
from service.models import ControlList, Entry, Event, Observation, StatusChange

START = date(2020, 1, 1)
STATUSES = [s.value for s in Status]


def _random_entry(session, rng: random.Random, control_list: ControlList, country_code: str) -> Entry:
    entry = Entry(
        list_id=control_list.id,
        country_code=country_code,
        version=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    session.add(entry)
    session.flush()
    recorded = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(rng.randint(0, 12)):
        recorded += timedelta(minutes=1)
        effective_on = None if rng.random() < 0.1 else START + timedelta(days=rng.randint(0, 20))
        status = rng.choice(STATUSES[:2]) if rng.random() < 0.5 else rng.choice(STATUSES)
        session.add(
            StatusChange(
                entry_id=entry.id,
                from_status=rng.choice([None, *STATUSES]),
                status=status,
                effective_on=effective_on,
                expected_effective_on=None,
                recorded_at=recorded,
                sources=[{"url": f"https://example.org/{rng.random()}"}],
            )
        )
    for _ in range(rng.randint(0, 4)):
        recorded += timedelta(minutes=1)
        session.add(
            Observation(
                entry_id=entry.id,
                status=rng.choice(sorted(OBSERVABLE)),
                observed_on=START + timedelta(days=rng.randint(-3, 20)),
                recorded_at=recorded,
                sources=[{"url": f"https://example.org/{rng.random()}"}],
            )
        )
    session.flush()
    session.expire_all()
    return entry


@pytest.mark.parametrize("seed", range(4))
def test_the_neighbourhood_of_a_date_decides_as_the_whole_timeline_does(session, seed):
    rng = random.Random(seed)
    lists = list(session.scalars(select(ControlList).order_by(ControlList.id)))
    taken = {(e.list_id, e.country_code) for e in session.scalars(select(Entry))}
    free = [
        (cl, code)
        for cl in lists
        for code in ("AQ", "BV", "HM", "UM", "TF", "GS", "IO", "PN")
        if (cl.id, code) not in taken
    ]
    for control_list, code in rng.sample(free, 6):
        entry = _random_entry(session, rng, control_list, code)
        changes = list(session.scalars(select(StatusChange).where(StatusChange.entry_id == entry.id)))
        observations = list(session.scalars(select(Observation).where(Observation.entry_id == entry.id)))
        timeline = ordered(changes)
        shown = visible(observations)
        for day in range(-5, 25):
            on = START + timedelta(days=day)
            near, evidence = neighbourhood(session, entry, on)
            for status in Status:
                for known in (True, False):
                    whole = place(timeline, status, on, shown, absence_known=known)
                    assert place(near, status, on, evidence, absence_known=known) == whole, (seed, on, status)
            near, evidence = neighbourhood(session, entry, on, run=True)
            expected = lookups.answer(control_list, code, changes, on, None, observations)
            assert lookups.answer(control_list, code, near, on, None, evidence) == expected, (seed, on)


@pytest.mark.parametrize("seed", range(4))
def test_the_neighbourhood_after_a_change_appended_decides_as_the_whole_timeline(session, seed):
    """A write answers with the entry's state today from the neighbourhood it placed its change
    in, when the change is the last one and in force (no second query)."""
    rng = random.Random(100 + seed)
    control_list = session.get(ControlList, "us-ear-d1")
    for code in ("AQ", "BV", "HM", "UM", "TF", "GS"):
        entry = _random_entry(session, rng, control_list, code)
        dated = [
            c.effective_on
            for c in session.scalars(select(StatusChange).where(StatusChange.entry_id == entry.id))
            if c.effective_on
        ]
        on = max(dated, default=START) + timedelta(days=rng.randint(0, 2))
        near, _evidence = neighbourhood(session, entry, on, run=True)
        change = StatusChange(
            entry_id=entry.id,
            from_status=None,
            status=rng.choice(STATUSES),
            effective_on=on,
            recorded_at=datetime(2026, 2, 1, tzinfo=UTC),
            sources=[{"url": "https://example.org/new"}],
        )
        session.add(change)
        session.flush()
        recorded = Recorded(change=change, entry=entry, event=cast(Event, None), neighbours=near)
        changes = list(session.scalars(select(StatusChange).where(StatusChange.entry_id == entry.id)))
        observations = list(session.scalars(select(Observation).where(Observation.entry_id == entry.id)))
        assert recorded.neighbourhood_after(on - timedelta(days=1)) is None  # not in force yet
        for as_of in (on, on + timedelta(days=3)):
            after = recorded.neighbourhood_after(as_of)
            assert after is not None
            expected = lookups.answer(control_list, code, changes, as_of, None, observations)
            assert lookups.answer(control_list, code, after, as_of, None, []) == expected, (seed, code, as_of)
