"""Load the seed data in `seeds/` idempotently: loading twice changes nothing.

Order: lists, treatments, the recorded history (history.yaml), then the
country-group table, which only seeds entries that have no history yet.
Seeded history is in the event feed (so a feed reader sees it) but creates no
webhook deliveries: nobody is flooded with facts that are years old.
"""

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.config import DEFAULT_SEEDS_PATH
from service.domain.audit import Actor
from service.domain.changes import ChangeRequest, record_status_change
from service.domain.countries import registry
from service.domain.events import touch_data
from service.domain.jsonable import jsonable
from service.domain.lists import DEFINING_FIELDS, DESCRIPTIVE_FIELDS, create_list
from service.domain.statuses import Status
from service.models import ControlList, Entry, Treatment

# The repository's seeds/; EXPORTCTL_SEEDS (config SEEDS_PATH) points the CLI elsewhere (the image).
DEFAULT_SEEDS = DEFAULT_SEEDS_PATH

SEED = Actor(name="seed")


class SeedError(ValueError):
    """The seed files are inconsistent (an unknown source id, country or list)."""


@dataclass
class SeedReport:
    lists: int = 0
    treatments: int = 0
    changes: int = 0

    def __str__(self) -> str:
        return f"{self.lists} lists, {self.treatments} treatments, {self.changes} changes added"


def _read_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class Seeder:
    def __init__(self, session: Session, directory: Path):
        self.session = session
        self.directory = directory
        self.sources: dict[str, dict] = _read_yaml(directory / "sources.yaml")
        self.report = SeedReport()

    def cite(self, ids: list[str]) -> list[dict]:
        missing = [i for i in ids if i not in self.sources]
        if missing:
            raise SeedError(f"unknown source ids: {missing}")
        return [jsonable(self.sources[i]) for i in ids]

    def recorded_at(self, sources: list[dict], explicit: date | None = None) -> datetime:
        """When a fact became knowable: its earliest source's publication date."""
        if explicit is not None:
            return _midnight(explicit)
        dates = [date.fromisoformat(s["published_on"]) for s in sources if s.get("published_on")]
        if not dates:
            raise SeedError(f"no publication date among sources {[s['url'] for s in sources]}")
        return _midnight(min(dates))

    def country(self, code: str) -> str:
        if registry().get(code) is None:
            raise SeedError(f"unknown country code {code!r}")
        return code

    def load(self) -> SeedReport:
        lists_doc = _read_yaml(self.directory / "lists.yaml")
        table = lists_doc["table"]
        for spec in lists_doc["lists"]:
            self.ensure_list({**lists_doc.get("defaults", {}), **spec}, table["published_on"])
        for spec in lists_doc.get("treatments", []):
            self.ensure_treatments(spec)
        for spec in _read_yaml(self.directory / "history.yaml")["changes"]:
            self.ensure_change(spec)
        self.load_table(lists_doc["lists"], table)
        return self.report

    def ensure_list(self, spec: dict, table_date: date) -> None:
        if self.session.get(ControlList, spec["id"]) is not None:
            return
        fields = {name: spec.get(name) for name in DESCRIPTIVE_FIELDS + DEFINING_FIELDS}
        create_list(  # in the feed, but not pushed to subscribers
            self.session,
            {**fields, "id": spec["id"], "sources": self.cite(spec.get("sources", []))},
            actor=SEED,
            recorded_at=_midnight(table_date),
            publish=False,
        )
        self.report.lists += 1

    def ensure_treatments(self, spec: dict) -> None:
        sources = self.cite(spec["sources"])
        for list_id in spec["lists"]:
            exists = self.session.scalars(
                select(Treatment).where(
                    Treatment.list_id == list_id, Treatment.country_code == spec["country"]
                )
            ).first()
            if exists is not None:
                continue
            self.session.add(
                Treatment(
                    list_id=list_id,
                    country_code=self.country(spec["country"]),
                    treated_as=self.country(spec["treated_as"]),
                    effective_on=spec["effective_on"],
                    recorded_at=self.recorded_at(sources),
                    note=spec.get("note"),
                    sources=sources,
                )
            )
            self.report.treatments += 1
            touch_data(self.session)  # lookups answer differently now: cached documents are stale
        self.session.flush()

    def _entry(self, list_id: str, country_code: str) -> Entry | None:
        return self.session.scalars(
            select(Entry).where(Entry.list_id == list_id, Entry.country_code == country_code)
        ).one_or_none()

    def ensure_change(self, spec: dict) -> None:
        country_code = self.country(spec["country"])
        control_list = self.session.get(ControlList, spec["list"])
        if control_list is None:
            raise SeedError(f"unknown list {spec['list']!r}")
        sources = self.cite(spec["sources"])
        recorded_at = self.recorded_at(sources, spec.get("recorded_on"))
        status = Status(spec["status"])
        entry = self._entry(control_list.id, country_code)
        if entry is not None and any(
            c.status == status and c.effective_on == spec.get("effective_on") and c.recorded_at == recorded_at
            for c in entry.changes
        ):
            return
        request = ChangeRequest(
            status=status,
            effective_on=spec.get("effective_on"),
            expected_effective_on=spec.get("expected_effective_on"),
            note=spec.get("note"),
            sources=sources,
        )
        record_status_change(
            self.session,
            control_list,
            country_code,
            request,
            recorded_at=recorded_at,
            actor="seed",
            publish=False,
        )
        self.report.changes += 1

    def load_table(self, lists: list[dict], table: dict) -> None:
        sources = self.cite(table["sources"])
        recorded_at = _midnight(table["published_on"])
        row_notes = table.get("row_notes", {})
        with (self.directory / table["file"]).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            country_code = self.country(row["iso2"])
            for spec in lists:
                if row[spec["column"]].strip().upper() != "X":
                    continue
                entry = self._entry(spec["id"], country_code)
                if entry is not None and entry.changes:
                    continue
                note = " ".join(n for n in (table.get("note"), row_notes.get(country_code)) if n)
                record_status_change(
                    self.session,
                    self.session.get(ControlList, spec["id"]),
                    country_code,
                    ChangeRequest(status=Status.LISTED, effective_on=None, sources=sources, note=note),
                    recorded_at=recorded_at,
                    actor="seed",
                    publish=False,
                )
                self.report.changes += 1


def load_seeds(session: Session, directory: Path = DEFAULT_SEEDS) -> SeedReport:
    """Load the seeds and commit; returns what was added (nothing, the second time)."""
    report = Seeder(session, directory).load()
    session.commit()
    return report
