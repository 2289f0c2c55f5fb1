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


VIETNAM_D1 = [
    Change(1, "listed", None),
    Change(2, "pending_removal", date(2026, 2, 20), datetime(2026, 2, 21, tzinfo=UTC)),
]


def test_nothing_is_in_force_before_the_first_dated_change():
    assert standing(ordered([Change(1, "pending_addition", date(2026, 5, 1))]), date(2026, 4, 30)) is None


def test_an_undated_first_change_holds_for_every_earlier_date():
    current = standing(ordered(VIETNAM_D1), date(1900, 1, 1))

    assert current.status == Status.LISTED
    assert current.since is None


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


def test_the_first_change_must_be_listed_or_pending_addition():
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
