"""A country's timeline: one lane per list, cut into runs of one status, for the country page's SVG.

Nothing here decides a status: each run's status is the domain's own answer
(`lookups.Changes.answer`) on the run's first day, asked once per date at which
anything can change (a change's effective date, a list's completeness date, a
treatment's start). This module only places those answers on an axis.
"""

import builtins
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from service.domain import lookups
from service.domain.countries import Country, registry
from service.domain.statuses import Answer

# Geometry in CSS pixels: the SVG is drawn at its own size (lanes line up with the HTML labels
# beside it) and scrolls sideways on a narrow screen.
PLOT_LEFT = 8
PLOT_WIDTH = 860
RIGHT_MARGIN = 16
# service/static/pages.css repeats these three for the lane labels beside the SVG (a test checks).
AXIS_HEIGHT = 28
LANE_HEIGHT = 22
LANE_GAP = 10
LEGEND_NAMES = {
    Answer.LISTED: "listed",
    Answer.PENDING_REMOVAL: "pending removal",
    Answer.PENDING_ADDITION: "pending addition",
    Answer.REMOVED: "removed",
    Answer.NOT_LISTED: "not listed",
    Answer.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class Run:
    status: str
    start: date
    end: date  # exclusive
    x: float
    width: float
    # The run began before the axis does (a status in force since an unrecorded date, or earlier).
    open_start: bool

    @property
    def label(self) -> str:
        return LEGEND_NAMES[Answer(self.status)]

    @property
    def label_x(self) -> float:
        return round(self.x + (16 if self.open_start else 6), 1)

    @property
    def label_fits(self) -> bool:
        """Whether the status's name fits inside the run (about 7 units a character at 11.5px)."""
        return self.width >= (self.label_x - self.x) + len(self.label) * 7 + 6


@dataclass(frozen=True)
class Lane:
    list: dict[str, Any]
    runs: builtins.list[Run]  # `list` is the field above
    recorded: bool
    y: float

    def describe(self) -> str:
        parts = []
        for run in self.runs:
            start = "before " + run.end.isoformat() if run.open_start else "from " + run.start.isoformat()
            parts.append(f"{run.label} {start}")
        return f"{self.list['code']}: " + "; ".join(parts) + "."


@dataclass(frozen=True)
class Tick:
    year: int
    x: float


@dataclass(frozen=True)
class Marker:
    label: str
    day: date
    x: float


@dataclass
class Timeline:
    start: date
    end: date
    lanes: list[Lane]
    ticks: list[Tick]
    markers: list[Marker] = field(default_factory=list)
    width: int = PLOT_LEFT + PLOT_WIDTH + RIGHT_MARGIN
    lane_height: int = LANE_HEIGHT
    lane_pitch: int = LANE_HEIGHT + LANE_GAP
    axis_height: int = AXIS_HEIGHT

    @property
    def height(self) -> int:
        return AXIS_HEIGHT + len(self.lanes) * (LANE_HEIGHT + LANE_GAP) + 6


def _x(day: date, start: date, end: date) -> float:
    return round(PLOT_LEFT + (day - start).days / (end - start).days * PLOT_WIDTH, 1)


def country_timeline(
    session: Session, country: Country, as_of: date, known_at: datetime | None, today: date
) -> Timeline:
    lists = lookups.all_lists(session)
    changes = lookups.country_changes(session, country)
    recorded_lists: set[str] = set()
    dates: set[date] = set()
    codes = {country.alpha_2}
    for control_list in lists:
        treated = changes.answer(control_list, country.alpha_2, as_of, known_at).get("treated_as")
        if treated:
            codes.add(treated["treated_as"])
            dates.add(treated["effective_on"])
        if control_list.membership_complete_from:
            dates.add(control_list.membership_complete_from)
    for code in sorted(codes):
        subject = registry().get(code)
        assert subject is not None, f"no country has the code {code!r}"
        for change in lookups.full_country_history(session, subject, known_at):
            recorded_lists.add(change["list"]["id"])
            for day in (change["effective_on"], change["expected_effective_on"]):
                if day is not None:
                    dates.add(day)
    years = [d.year for d in dates | {as_of, today}]
    start = date(max(min(years) - 1, 1), 1, 1)
    end = date(min(max(years) + 2, 9999), 1, 1)
    inner = sorted(d for d in dates if start < d < end)

    ordered = sorted(lists, key=lambda cl: (cl.id not in recorded_lists, cl.id))
    lanes = []
    for index, control_list in enumerate(ordered):
        runs: list[tuple[str, date]] = []
        for day in [start, *inner]:
            status = changes.answer(control_list, country.alpha_2, day, known_at)["status"]
            if not runs or runs[-1][0] != status:
                runs.append((status, day))
        placed = []
        for i, (status, run_start) in enumerate(runs):
            run_end = runs[i + 1][1] if i + 1 < len(runs) else end
            x = _x(run_start, start, end)
            placed.append(
                Run(
                    status=status,
                    start=run_start,
                    end=run_end,
                    x=x,
                    width=round(_x(run_end, start, end) - x, 1),
                    open_start=run_start == start and status != Answer.UNKNOWN,
                )
            )
        lanes.append(
            Lane(
                list=lookups.list_ref(control_list),
                runs=placed,
                recorded=control_list.id in recorded_lists,
                y=AXIS_HEIGHT + index * (LANE_HEIGHT + LANE_GAP),
            )
        )
    ticks = [Tick(year, _x(date(year, 1, 1), start, end)) for year in range(start.year, end.year + 1)]
    markers = [Marker(f"as of {as_of.isoformat()}", as_of, _x(as_of, start, end))]
    if today != as_of:
        markers.append(Marker("today", today, _x(today, start, end)))
    return Timeline(start=start, end=end, lanes=lanes, ticks=ticks, markers=markers)
