"""Load the seed data in `seeds/` idempotently: loading twice changes nothing.

Order: lists, treatments, then every observation (Vietnam's in history.yaml, the
eCFR table's memberships, the other lists' undated or amending rows), then every
change (history.yaml, the dated EAR changes, the other lists' changes): evidence
first, so that a change's from_status is the status the evidence shows.
Seeded changes are in the event feed (so a feed reader sees them) but create no
webhook deliveries: nobody is flooded with facts that are years old. Observations
emit no event (they change no status).

A database that holds the old seeds (table memberships as undated changes) takes
the new ones beside them: an undated change already on record counts as the
table's observation, and nothing recorded through the API is touched.
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
from service.domain.changes import ChangeRequest, ObservationRequest, record_observation, record_status_change
from service.domain.countries import registry
from service.domain.jsonable import jsonable
from service.domain.lists import DEFINING_FIELDS, DESCRIPTIVE_FIELDS, create_list
from service.domain.sources import with_kind
from service.domain.statuses import Answer, Status
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
    observations: int = 0

    def __str__(self) -> str:
        return (
            f"{self.lists} lists, {self.treatments} treatments, {self.changes} changes, "
            f"{self.observations} observations added"
        )


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
        history = _read_yaml(self.directory / "history.yaml")
        reference = _read_yaml(self.directory / "reference_lists.yaml")
        table = lists_doc["table"]
        for spec in lists_doc["lists"]:
            self.ensure_list({**lists_doc.get("defaults", {}), **spec}, table["published_on"])
        other = reference["other_lists"]
        for spec in other["lists"]:
            self.ensure_list(spec, spec["recorded_on"])
        for spec in lists_doc.get("treatments", []):
            self.ensure_treatments(spec)

        for spec in history.get("observations", []):
            sources = self.cite(spec["sources"])
            self.ensure_observation(
                spec["list"],
                spec["country"],
                status=spec["status"],
                observed_on=spec["observed_on"],
                sources=sources,
                recorded_at=self.recorded_at(sources, spec.get("recorded_on")),
                note=spec.get("note"),
                confidence=spec.get("confidence"),
            )
        self.load_table(lists_doc["lists"], table)
        other_rows = self.other_list_rows(other)
        for row in other_rows:
            if row["row_kind"] == "observation":
                self.ensure_observation(**row["fact"])

        for spec in history["changes"]:
            self.ensure_change(spec)
        for fact in self.ear_dated_changes(reference["ear_dated_changes"]):
            self.ensure_change_fact(**fact)
        for row in other_rows:
            if row["row_kind"] == "change":
                self.ensure_change_fact(**row["fact"])
        return self.report

    def ensure_list(self, spec: dict, recorded_on: date) -> None:
        if self.session.get(ControlList, spec["id"]) is not None:
            return
        fields = {name: spec.get(name) for name in DESCRIPTIVE_FIELDS + DEFINING_FIELDS}
        sources = [
            self.cite([source])[0] if isinstance(source, str) else with_kind(source)
            for source in spec.get("sources", [])
        ]
        create_list(  # in the feed, but not pushed to subscribers
            self.session,
            {**fields, "id": spec["id"], "sources": sources},
            actor=SEED,
            recorded_at=_midnight(recorded_on),
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
        self.session.flush()

    def _entry(self, list_id: str, country_code: str) -> Entry | None:
        return self.session.scalars(
            select(Entry).where(Entry.list_id == list_id, Entry.country_code == country_code)
        ).one_or_none()

    def _list(self, list_id: str) -> ControlList:
        control_list = self.session.get(ControlList, list_id)
        if control_list is None:
            raise SeedError(f"unknown list {list_id!r}")
        return control_list

    def ensure_observation(
        self,
        list_id: str,
        country: str,
        *,
        status: str,
        observed_on: date,
        sources: list[dict],
        recorded_at: datetime,
        note: str | None = None,
        confidence: str | None = None,
    ) -> None:
        country_code = self.country(country)
        control_list = self._list(list_id)
        entry = self._entry(control_list.id, country_code)
        if entry is not None and (
            any(
                o.status == status and o.observed_on == observed_on and o.recorded_at == recorded_at
                for o in entry.observations
            )
            # The old seeds held table memberships as undated changes: the same fact.
            or any(
                c.effective_on is None
                and c.status == status
                and c.recorded_at == recorded_at
                and recorded_at.date() == observed_on
                for c in entry.changes
            )
        ):
            return
        record_observation(
            self.session,
            control_list,
            country_code,
            ObservationRequest(
                status=Answer(status),
                observed_on=observed_on,
                sources=sources,
                note=note,
                confidence=confidence,
            ),
            recorded_at=recorded_at,
            actor=SEED,
        )
        self.report.observations += 1

    def ensure_change(self, spec: dict) -> None:
        sources = self.cite(spec["sources"])
        self.ensure_change_fact(
            spec["list"],
            spec["country"],
            status=spec["status"],
            effective_on=spec.get("effective_on"),
            expected_effective_on=spec.get("expected_effective_on"),
            sources=sources,
            recorded_at=self.recorded_at(sources, spec.get("recorded_on")),
            note=spec.get("note"),
            confidence=spec.get("confidence"),
        )

    def ensure_change_fact(
        self,
        list_id: str,
        country: str,
        *,
        status: str,
        effective_on: date | None,
        sources: list[dict],
        recorded_at: datetime,
        note: str | None = None,
        confidence: str | None = None,
        expected_effective_on: date | None = None,
    ) -> None:
        country_code = self.country(country)
        control_list = self._list(list_id)
        entry = self._entry(control_list.id, country_code)
        if entry is not None and any(
            c.status == status and c.effective_on == effective_on and c.recorded_at == recorded_at
            for c in entry.changes
        ):
            return
        request = ChangeRequest(
            status=Status(status),
            effective_on=effective_on,
            expected_effective_on=expected_effective_on,
            note=note,
            sources=sources,
            confidence=confidence,
        )
        record_status_change(
            self.session,
            control_list,
            country_code,
            request,
            recorded_at=recorded_at,
            actor=SEED,
            publish=False,
        )
        self.report.changes += 1

    def load_table(self, lists: list[dict], table: dict) -> None:
        """Every X in the eCFR table: an observation of the membership on the table's date."""
        sources = self.cite(table["sources"])
        recorded_at = _midnight(table["published_on"])
        row_notes = table.get("row_notes", {})
        for row in _read_csv(self.directory / table["file"]):
            for spec in lists:
                if row[spec["column"]].strip().upper() != "X":
                    continue
                note = " ".join(n for n in (table.get("note"), row_notes.get(row["iso2"])) if n)
                self.ensure_observation(
                    spec["id"],
                    row["iso2"],
                    status=Status.LISTED.value,
                    observed_on=table["published_on"],
                    sources=sources,
                    recorded_at=recorded_at,
                    note=note,
                )

    def ear_dated_changes(self, spec: dict) -> list[dict]:
        """reference/ear_dated_changes.csv as change facts."""
        facts = []
        for row in _read_csv(self.directory / spec["file"]):
            url = row["source_url"]
            if url not in spec["sources"]:
                raise SeedError(f"no title, publisher and kind for source {url!r}")
            published_on = date.fromisoformat(row["date_published"])
            source = {
                **spec["sources"][url],
                "url": url,
                "published_on": published_on,
                "citation": row["citation"],
            }
            facts.append(
                {
                    "list_id": spec["lists"][row["list"]],
                    "country": row["country_alpha2"],
                    "status": spec["changes"][row["change"]],
                    "effective_on": date.fromisoformat(row["date_effective"]),
                    "sources": [jsonable(source)],
                    "recorded_at": _midnight(published_on),
                    "note": row["notes"],
                    "confidence": row["confidence"],
                }
            )
        return facts

    def other_list_rows(self, spec: dict) -> list[dict]:
        """reference/other_lists.csv as observation and change facts, by row_kind."""
        lists = {item["reference_id"]: item for item in spec["lists"]}
        compiled_on = spec["compiled_on"]
        rows = []
        for row in _read_csv(self.directory / spec["file"]):
            list_spec = lists.get(row["list_id"])
            if list_spec is None or list_spec["jurisdiction"] != row["jurisdiction"]:
                raise SeedError(f"unknown list {row['list_id']!r} in {row['jurisdiction']!r}")
            url = row["source_url"]
            if url not in spec["source_kinds"]:
                raise SeedError(f"no kind for source {url!r}")
            published_on = date.fromisoformat(row["published_on"]) if row["published_on"] else None
            effective_on = date.fromisoformat(row["effective_on"]) if row["effective_on"] else None
            source = {
                "title": row["source_title"],
                "publisher": row["source_publisher"],
                "url": url,
                "published_on": published_on,
                "citation": row["citation"] or None,
                "kind": spec["source_kinds"][url],
            }
            fact = {
                "list_id": list_spec["id"],
                "country": row["country_alpha2"],
                "status": row["status"],
                "sources": [jsonable(source)],
                "confidence": row["confidence"],
            }
            if row["row_kind"] == "observation":
                observed_on = effective_on or published_on or compiled_on
                fact["observed_on"] = observed_on
                fact["recorded_at"] = _midnight(max(published_on or compiled_on, observed_on))
                if effective_on is None and published_on is None:
                    fact["note"] = (
                        f"Undated in its source: counted as observed on the reference's compilation date, "
                        f"{compiled_on.isoformat()}."
                    )
            elif row["row_kind"] == "change":
                if effective_on is None:
                    raise SeedError(f"a change with no effective date: {row}")
                fact["effective_on"] = effective_on
                fact["recorded_at"] = _midnight(published_on or compiled_on)
            else:
                raise SeedError(f"unknown row_kind {row['row_kind']!r}")
            rows.append({"row_kind": row["row_kind"], "fact": fact})
        return rows


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def load_seeds(session: Session, directory: Path = DEFAULT_SEEDS) -> SeedReport:
    """Load the seeds and commit; returns what was added (nothing, the second time)."""
    report = Seeder(session, directory).load()
    session.commit()
    return report
