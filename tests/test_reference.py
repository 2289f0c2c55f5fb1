"""Seeds and reference cannot drift: the repository's copy equals ../shared/reference/, and
every seeded fact of the reference's lists equals its row, cell for cell."""

import csv
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from service import seeding
from service.models import ControlList, Entry

ROOT = Path(__file__).resolve().parent.parent
COPY = seeding.DEFAULT_SEEDS / "reference"
SHARED = ROOT.parent / "shared" / "reference"


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/reference beside the repository")
def test_the_repository_copy_equals_the_shared_reference():
    shared = {p.name: p.read_bytes() for p in SHARED.iterdir() if p.is_file()}
    copy = {p.name: p.read_bytes() for p in COPY.iterdir() if p.is_file()}

    assert sorted(copy) == sorted(shared)
    for name in shared:
        assert copy[name] == shared[name], f"seeds/reference/{name} differs from ../shared/reference/{name}"


def rows(name: str) -> list[dict[str, str]]:
    with (COPY / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def spec() -> dict:
    return yaml.safe_load((seeding.DEFAULT_SEEDS / "reference_lists.yaml").read_text())


def facts(session, list_ids) -> dict[tuple[str, str], Entry]:
    entries = session.scalars(
        select(Entry)
        .where(Entry.list_id.in_(list_ids))
        .options(selectinload(Entry.changes), selectinload(Entry.observations))
    )
    return {(e.list_id, e.country_code): e for e in entries}


def test_every_row_of_the_other_lists_is_seeded_cell_for_cell(session):
    other = spec()["other_lists"]
    lists = {item["reference_id"]: item for item in other["lists"]}
    entries = facts(session, [item["id"] for item in other["lists"]])
    compiled = other["compiled_on"]
    matched = set()

    for row in rows("other_lists.csv"):
        list_spec = lists[row["list_id"]]
        control_list = session.get(ControlList, list_spec["id"])
        assert control_list.jurisdiction == row["jurisdiction"]
        entry = entries[(list_spec["id"], row["country_alpha2"])]
        expected_source = {
            "title": row["source_title"],
            "publisher": row["source_publisher"],
            "url": row["source_url"],
            "published_on": row["published_on"] or None,
            "citation": row["citation"] or None,
            "kind": other["source_kinds"][row["source_url"]],
        }
        if row["row_kind"] == "change":
            candidates = [c for c in entry.changes if c.effective_on.isoformat() == row["effective_on"]]
        else:
            observed_on = row["effective_on"] or row["published_on"] or compiled.isoformat()
            candidates = [o for o in entry.observations if o.observed_on.isoformat() == observed_on]
        found = [
            f
            for f in candidates
            if f.status == row["status"]
            and f.sources == [expected_source]
            and f.confidence == row["confidence"]
        ]
        assert len(found) == 1, row
        matched.add((row["row_kind"], found[0].id))

    seeded = {("change", c.id) for e in entries.values() for c in e.changes}
    seeded |= {("observation", o.id) for e in entries.values() for o in e.observations}
    assert matched == seeded  # nothing seeded on these lists that the reference does not hold
    assert len(matched) == 137


def test_every_dated_ear_change_is_seeded_cell_for_cell(session):
    dated = spec()["ear_dated_changes"]
    entries = facts(session, list(dated["lists"].values()))

    for row in rows("ear_dated_changes.csv"):
        entry = entries[(dated["lists"][row["list"]], row["country_alpha2"])]
        found = [
            c
            for c in entry.changes
            if c.effective_on == date.fromisoformat(row["date_effective"])
            and c.status == dated["changes"][row["change"]]
            and c.note == row["notes"]
            and c.confidence == row["confidence"]
            and [(s["url"], s["citation"], s["published_on"]) for s in c.sources]
            == [(row["source_url"], row["citation"], row["date_published"])]
            and c.recorded_at.date().isoformat() == row["date_published"]
        ]
        assert len(found) == 1, row


def test_low_confidence_facts_rest_on_their_evidence_not_promoted(session):
    entry = facts(session, ["us-ear-a5"])[("us-ear-a5", "AE")]
    (change,) = [c for c in entry.changes if c.effective_on == date(2026, 7, 10)]

    assert change.confidence == "low"
    assert {s["kind"] for s in change.sources} == {"press"}
