"""The timeline rules, without HTTP: what is in force when, and where a change may go."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from service.domain.statuses import Status, allowed_next, restrictions_apply
from service.domain.timeline import ordered, place, standing


@dataclass
class Change:
    id: int
    status: str
    effective_on: date | None
    recorded_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    expected_effective_on: date | None = None
    from_status: str | None = None


@dataclass
class Observation:
    id: int
    status: str
    observed_on: date
    recorded_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


VIETNAM_D1 = [
    Change(1, "listed", None),
    Change(2, "pending_removal", date(2026, 2, 20), datetime(2026, 2, 21, tzinfo=UTC)),
]


def test_nothing_is_in_force_before_the_first_dated_change():
    assert standing(ordered([Change(1, "pending_addition", date(2026, 5, 1))]), date(2026, 4, 30)) is None


def test_an_undated_change_is_evidence_from_the_day_it_was_recorded_not_before():
    before = standing(ordered(VIETNAM_D1), date(1900, 1, 1))
    after = standing(ordered(VIETNAM_D1), date(2026, 1, 1))

    assert (before.status, before.reason, before.observed_since) == (
        "unknown",
        "before_first_observation",
        date(2026, 1, 1),
    )
    assert (after.status, after.basis, after.since) == ("listed", "observation", None)


def test_a_status_is_known_from_its_earliest_observation_on():
    timeline = ordered([Change(1, "pending_removal", date(2026, 2, 20), from_status="listed")])
    observations = [Observation(1, "listed", date(2025, 5, 29)), Observation(2, "listed", date(2025, 11, 14))]

    assert standing(timeline, date(2025, 5, 28), observations).status == "unknown"
    on = standing(timeline, date(2025, 6, 1), observations)
    assert (on.status, on.observed_since, on.since) == ("listed", date(2025, 5, 29), None)
    # The change's from_status is evidence of the day before it, too.
    assert standing(timeline, date(2026, 2, 19)).status == "listed"
    assert standing(timeline, date(2026, 2, 18)).status == "unknown"


def test_observations_that_disagree_leave_the_dates_between_unknown():
    observations = [
        Observation(1, "listed", date(2020, 1, 1)),
        Observation(2, "not_listed", date(2022, 1, 1)),
    ]

    assert standing([], date(2021, 1, 1), observations).reason == "unrecorded_change"
    assert standing([], date(2023, 1, 1), observations).status == "not_listed"


def test_a_dated_change_gives_a_start_to_a_run_known_from_observations():
    observations = [Observation(1, "listed", date(2026, 7, 23))]
    timeline = ordered([Change(1, "listed", date(2024, 3, 15))])

    assert place([], Status.LISTED, date(2024, 3, 15), observations).legal is True
    assert standing(timeline, date(2024, 3, 15), observations).since == date(2024, 3, 15)
    assert standing(timeline, date(2024, 3, 14), observations) is None  # nothing known before


def test_pending_carries_its_announcement_and_expected_date():
    timeline = ordered(
        VIETNAM_D1 + [Change(3, "pending_removal", date(2026, 3, 1), expected_effective_on=date(2026, 6, 1))]
    )

    current = standing(timeline, date(2026, 4, 1))

    assert current.status == Status.PENDING_REMOVAL
    assert current.announced_on == date(2026, 2, 20)  # the run began with the announcement
    assert current.expected_effective_on == date(2026, 6, 1)  # the latest restatement


def test_known_at_hides_changes_recorded_later():
    timeline = ordered(VIETNAM_D1, known_at=datetime(2026, 2, 20, 23, 59, tzinfo=UTC))

    assert [c.id for c in timeline] == [1]


def test_a_backdated_change_takes_its_place_in_the_timeline():
    changes = VIETNAM_D1 + [
        Change(3, "removed", date(2026, 10, 1), datetime(2026, 10, 2, tzinfo=UTC)),
        Change(4, "removed", date(2026, 9, 1), datetime(2026, 11, 1, tzinfo=UTC)),  # correction
    ]

    assert standing(ordered(changes), date(2026, 9, 15)).status == Status.REMOVED
    assert standing(ordered(changes), date(2026, 9, 15)).since == date(2026, 9, 1)
    as_known_before = ordered(changes, known_at=datetime(2026, 10, 15, tzinfo=UTC))
    assert standing(as_known_before, date(2026, 9, 15)).status == Status.PENDING_REMOVAL


@pytest.mark.parametrize(
    ("status", "effective_on", "legal", "from_status"),
    [
        (Status.REMOVED, date(2026, 11, 1), True, Status.PENDING_REMOVAL),
        (Status.LISTED, date(2026, 11, 1), True, Status.PENDING_REMOVAL),  # announcement withdrawn
        (Status.PENDING_ADDITION, date(2026, 11, 1), False, Status.PENDING_REMOVAL),
        (
            Status.REMOVED,
            date(2026, 1, 1),
            False,
            Status.LISTED,
        ),  # pending_removal cannot follow it
    ],
)
def test_placement_checks_the_status_in_force_at_the_date(status, effective_on, legal, from_status):
    placement = place(ordered(VIETNAM_D1), status, effective_on)

    assert placement.from_status == from_status
    assert placement.legal is legal


def test_after_known_absence_the_first_change_must_be_listed_or_pending_addition():
    assert place([], Status.REMOVED, date(2026, 1, 1)).legal is False
    assert place([], Status.LISTED, date(2026, 1, 1)).legal is True
    assert place([], Status.PENDING_ADDITION, date(2026, 1, 1)).allowed == [
        Status.LISTED,
        Status.PENDING_ADDITION,
    ]


def test_allowed_next_statuses():
    assert allowed_next(Status.REMOVED) == [Status.LISTED, Status.PENDING_ADDITION]
    assert allowed_next(Status.LISTED) == [Status.PENDING_REMOVAL, Status.REMOVED]


@pytest.mark.parametrize(
    ("status", "effect", "expected"),
    [
        ("listed", "restrictive", True),
        ("pending_removal", "restrictive", True),
        ("removed", "restrictive", False),
        ("pending_addition", "restrictive", False),
        ("listed", "favourable", False),
    ],
)
def test_restrictions_apply_while_listed_or_pending_removal(status, effect, expected):
    assert restrictions_apply(status, effect) is expected


def test_where_nothing_is_known_true_history_may_start_with_a_removal():
    assert place([], Status.REMOVED, date(2020, 2, 24), absence_known=False).legal is True
    assert place([], Status.REMOVED, date(2020, 2, 24), absence_known=False).from_status is None
    # ... but a removal cannot be followed by a pending removal.
    removed = ordered([Change(1, "removed", date(2020, 2, 24))])
    assert place(removed, Status.PENDING_REMOVAL, date(2021, 1, 1), absence_known=False).legal is False
