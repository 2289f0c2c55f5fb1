"""Compare what the regulator publishes with what the service answers; propose the differences.

A domain service over a session (the caller commits): an import is one
transaction, so it either records all its proposals, checks and audit entry,
or nothing. Approving a proposal records its change through
`record_status_change`, the path every change takes, at the entry version
the proposal was made against: a change recorded meanwhile makes it stale.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from service import clock
from service.domain import audit, lookups
from service.domain.audit import Actor
from service.domain.changes import ChangeRequest, Recorded, record_status_change
from service.domain.countries import registry
from service.domain.errors import ConcurrentUpdate, Conflict, NotFound, UnknownList, VersionMismatch
from service.domain.events import emit
from service.domain.jsonable import jsonable
from service.domain.outbox import fan_out
from service.domain.statuses import Answer, Status
from service.importers import ecfr
from service.importers.errors import UnrecognisedFormat
from service.models import ControlList, Entry, ListCheck, Proposal
from service.vocabulary import EventType, ProposalState

# The lists Supplement No. 1's columns are, by the ids the seeds give them.
ECFR_LISTS = {column: "us-ear-" + column.replace(":", "").lower() for column in ecfr.COLUMNS}

MEMBER = frozenset({Answer.LISTED.value, Answer.PENDING_REMOVAL.value})


@dataclass(frozen=True)
class Document:
    """A publication an import read: where it came from and what a person needs to find it."""

    origin: str  # "ecfr" or "federal-register"
    key: str  # "ecfr:15-740:2026-12-01", "fr:2026-23456"
    details: dict[str, Any]


@dataclass(frozen=True)
class Proposed:
    """A change an importer read: `status` on `list_id` for `country_code` from `effective_on`."""

    list_id: str
    country_code: str
    status: Status
    effective_on: date
    sources: list[dict[str, Any]]
    note: str
    expected_effective_on: date | None = None


@dataclass
class ImportReport:
    document: Document
    proposals: list[Proposal] = field(default_factory=list)
    already_proposed: int = 0
    checked_lists: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.proposals)} new proposals"]
        if self.already_proposed:
            parts.append(f"{self.already_proposed} already proposed")
        if self.unchanged:
            parts.append(f"{self.unchanged} entries already as published")
        if self.checked_lists:
            parts.append(f"{len(self.checked_lists)} lists checked and unchanged")
        return f"{self.document.key}: " + ", ".join(parts)


def _list(session: Session, list_id: str) -> ControlList:
    try:
        return lookups.get_list(session, list_id)
    except UnknownList as exc:
        raise UnrecognisedFormat(
            f"The service has no list {list_id!r} to compare with: seed the lists first (exportctl seed)."
        ) from exc


def standing_on(session: Session, control_list: ControlList, country_code: str, as_of: date) -> str:
    """What the service answers for one country on one list on a date (a status or an Answer)."""
    country = registry().get(country_code)
    assert country is not None, f"no country has the code {country_code!r}"
    return lookups.entry_state(session, control_list, country, as_of)["status"]


def _entry_version(session: Session, list_id: str, country_code: str) -> int:
    version = session.scalar(
        select(Entry.version).where(Entry.list_id == list_id, Entry.country_code == country_code)
    )
    return version or 0


def proposal_document(proposal: Proposal) -> dict[str, Any]:
    """A proposal as the API shows it and `proposal.created` carries it."""
    control_list = lookups.list_ref(proposal.control_list) if proposal.control_list else None
    country = registry().get(proposal.country_code) if proposal.country_code else None
    links: dict[str, str] = {"self": f"/v1/proposals/{proposal.id}"}
    if proposal.list_id and proposal.country_code:
        links["entry"] = lookups.entry_path(proposal.list_id, proposal.country_code)
    if proposal.change_id:
        links["change"] = f"{links['entry']}/changes/{proposal.change_id}"
    return {
        "id": proposal.id,
        "kind": proposal.kind,
        "state": proposal.state,
        "origin": proposal.origin,
        "list": control_list,
        "country": lookups.country_summary(country) if country else None,
        "status": proposal.status,
        "effective_on": proposal.effective_on,
        "expected_effective_on": proposal.expected_effective_on,
        "observed_status": proposal.observed_status,
        "base_version": proposal.base_version,
        "note": proposal.note,
        "sources": proposal.sources,
        "document": {"key": proposal.document_key, **proposal.document},
        "created_at": proposal.created_at,
        "created_by": proposal.created_by,
        "decided_at": proposal.decided_at,
        "decided_by": proposal.decided_by,
        "reason": proposal.reason,
        "change_id": proposal.change_id,
        "links": links,
    }


def _add(session: Session, proposal: Proposal) -> Proposal:
    session.add(proposal)
    session.flush()
    event = emit(
        session,
        EventType.PROPOSAL_CREATED,
        jsonable(proposal_document(proposal)),
        country_code=proposal.country_code,
        list_id=proposal.list_id,
    )
    fan_out(session, event)
    return proposal


def _known(session: Session, dedupe_key: str) -> bool:
    return session.scalar(select(Proposal.id).where(Proposal.dedupe_key == dedupe_key)) is not None


def propose_change(
    session: Session, document: Document, change: Proposed, observed: str, *, actor: Actor
) -> Proposal | None:
    """A proposal for `change`, unless this document or an open proposal already proposes it."""
    dedupe_key = "|".join(
        [
            document.key,
            change.list_id,
            change.country_code,
            change.status.value,
            change.effective_on.isoformat(),
        ]
    )
    open_same = session.scalar(
        select(Proposal.id).where(
            Proposal.state == ProposalState.PENDING,
            Proposal.list_id == change.list_id,
            Proposal.country_code == change.country_code,
            Proposal.status == change.status.value,
        )
    )
    if open_same is not None or _known(session, dedupe_key):
        return None
    return _add(
        session,
        Proposal(
            kind="change",
            state=ProposalState.PENDING,
            origin=document.origin,
            document_key=document.key,
            document=jsonable(document.details),
            dedupe_key=dedupe_key,
            list_id=change.list_id,
            country_code=change.country_code,
            status=change.status.value,
            effective_on=change.effective_on,
            expected_effective_on=change.expected_effective_on,
            note=change.note,
            sources=jsonable(change.sources),
            observed_status=observed,
            base_version=_entry_version(session, change.list_id, change.country_code),
            created_at=clock.utcnow(),
            created_by=actor.name,
        ),
    )


def propose_review(
    session: Session, document: Document, note: str, sources: list[dict], *, actor: Actor
) -> Proposal | None:
    """A document the importer could not map to entries with confidence, for a person to read."""
    dedupe_key = f"{document.key}|review"
    if _known(session, dedupe_key):
        return None
    return _add(
        session,
        Proposal(
            kind="review",
            state=ProposalState.PENDING,
            origin=document.origin,
            document_key=document.key,
            document=jsonable(document.details),
            dedupe_key=dedupe_key,
            note=note,
            sources=jsonable(sources),
            base_version=0,
            created_at=clock.utcnow(),
            created_by=actor.name,
        ),
    )


def import_ecfr_table(
    session: Session, table: ecfr.CountryGroupTable, issue_date: date, *, actor: Actor, url: str | None = None
) -> ImportReport:
    """Compare every column of the table with the service's answers on `issue_date`.

    Each difference becomes a proposal (`listed` or `removed`, in force by the
    issue date); a list whose membership agrees gets a freshness check instead.
    """
    source = ecfr.source(issue_date)
    document = Document(
        origin="ecfr",
        key=f"ecfr:15-740:{issue_date.isoformat()}",
        details={
            "title": source["title"],
            "issue_date": issue_date,
            "citation": ecfr.CITATION,
            "url": url or source["url"],
        },
    )
    report = ImportReport(document=document)
    for column in ecfr.COLUMNS:
        control_list = _list(session, ECFR_LISTS[column])
        treated = {
            t.country_code for t in control_list.treatments if lookups.treatment_applies(t, issue_date, None)
        }
        answers = {
            e["country"]["alpha_2"]: e["status"]
            for e in lookups.list_entries(session, control_list, issue_date, None)
        }
        members = {code for code, status in answers.items() if status in MEMBER}
        published = table.members[column] - treated
        absent = (
            Answer.NOT_LISTED if lookups.membership_known(control_list, issue_date, None) else Answer.UNKNOWN
        )
        differences = [(code, Status.LISTED) for code in sorted(published - members)] + [
            (code, Status.REMOVED) for code in sorted(members - published)
        ]
        for code, status in differences:
            verb = "lists" if status == Status.LISTED else "no longer lists"
            change = Proposed(
                list_id=control_list.id,
                country_code=code,
                status=status,
                effective_on=issue_date,
                sources=[source],
                note=(
                    f"The eCFR of {issue_date.isoformat()} {verb} {code} in Country Group {column} "
                    f"(15 CFR 740 Supp. No. 1): in force by that date. The Federal Register rule that "
                    "made the change gives its exact effective date."
                ),
            )
            proposal = propose_change(session, document, change, answers.get(code, absent.value), actor=actor)
            if proposal is None:
                report.already_proposed += 1
            else:
                report.proposals.append(proposal)
        if not differences:
            record_check(session, control_list, issue_date, document, source, actor=actor)
            report.checked_lists.append(control_list.id)
    _audit_import(session, report, actor)
    return report


def record_check(
    session: Session,
    control_list: ControlList,
    as_of: date,
    document: Document,
    source: dict,
    *,
    actor: Actor,
) -> ListCheck:
    check = ListCheck(
        list_id=control_list.id,
        as_of=as_of,
        checked_at=clock.utcnow(),
        origin=document.origin,
        document_key=document.key,
        source=jsonable(source),
        actor=actor.name,
    )
    session.add(check)
    return check


def last_checks(session: Session, list_ids: Iterable[str] | None = None) -> dict[str, ListCheck]:
    """Each list's latest freshness check (what a `checked_at` would show)."""
    query = select(ListCheck).order_by(ListCheck.list_id, ListCheck.checked_at, ListCheck.id)
    if list_ids is not None:
        query = query.where(ListCheck.list_id.in_(list(list_ids)))
    return {check.list_id: check for check in session.scalars(query)}


def _audit_import(session: Session, report: ImportReport, actor: Actor) -> None:
    audit.record(
        session,
        actor,
        f"import.{report.document.origin}",
        f"document:{report.document.key}"[:100],
        document=report.document.details,
        proposals=[p.id for p in report.proposals],
        already_proposed=report.already_proposed,
        checked_lists=report.checked_lists,
    )


def import_announced(
    session: Session,
    document: Document,
    changes: list[tuple[str, str, bool, date]],
    *,
    pending: bool,
    sources: list[dict],
    note: str,
    review: str | None,
    actor: Actor,
    expected_effective_on: date | None = None,
) -> ImportReport:
    """Proposals for the entries a Federal Register document changes.

    `changes` are (column, country, member afterwards, date). A rule proposes
    `listed`/`removed`; a document only filed for public inspection proposes
    `pending_addition`/`pending_removal` (announced, not yet law). `review`: what
    could not be mapped, carried as a proposal for a person to read.
    """
    report = ImportReport(document=document)
    for column, code, member, on in changes:
        control_list = _list(session, ECFR_LISTS[column])
        observed = standing_on(session, control_list, code, on)
        if member == (observed in MEMBER):
            report.unchanged += 1
            continue
        if pending:
            status = Status.PENDING_ADDITION if member else Status.PENDING_REMOVAL
        else:
            status = Status.LISTED if member else Status.REMOVED
        proposal = propose_change(
            session,
            document,
            Proposed(
                list_id=control_list.id,
                country_code=code,
                status=status,
                effective_on=on,
                sources=sources,
                note=note,
                expected_effective_on=expected_effective_on,
            ),
            observed,
            actor=actor,
        )
        if proposal is None:
            report.already_proposed += 1
        else:
            report.proposals.append(proposal)
    if review:
        proposal = propose_review(session, document, review, sources, actor=actor)
        if proposal is None:
            report.already_proposed += 1
        else:
            report.proposals.append(proposal)
    _audit_import(session, report, actor)
    return report


# --- decisions ----------------------------------------------------------------------


@dataclass
class Decision:
    proposal: Proposal
    recorded: Recorded | None = None

    @property
    def stale(self) -> bool:
        return self.proposal.state == ProposalState.STALE


def get_proposal(session: Session, proposal_id: int, *, lock: bool = False) -> Proposal:
    query = select(Proposal).where(Proposal.id == proposal_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    proposal = session.scalars(query).one_or_none() if 0 < proposal_id < 2**31 else None
    if proposal is None:
        raise NotFound(f"No proposal {proposal_id}.")
    return proposal


def _require_pending(proposal: Proposal) -> None:
    if proposal.state != ProposalState.PENDING:
        raise Conflict(
            f"Proposal {proposal.id} is already {proposal.state}; only a pending proposal can be decided.",
            state=proposal.state,
        )


def _decide(session: Session, proposal: Proposal, state: str, actor: Actor, **values) -> None:
    """Move a pending proposal to `state`, only if nobody decided it since we read it."""
    now = clock.utcnow()
    # Session.execute is typed to return a Result; for an UPDATE it is a CursorResult (sqlalchemy#9185).
    moved = cast(
        CursorResult[Any],
        session.execute(
            update(Proposal)
            .where(Proposal.id == proposal.id, Proposal.state == ProposalState.PENDING)
            .values(state=state, decided_at=now, decided_by=actor.name, **values)
            .execution_options(synchronize_session=False)
        ),
    )
    if moved.rowcount != 1:
        raise ConcurrentUpdate("Someone else decided this proposal at the same time; read it again.")
    session.refresh(proposal)


def approve(session: Session, proposal_id: int, *, actor: Actor, recorded_at: datetime) -> Decision:
    """Record the proposed change as `actor`, with the proposal's sources; or mark it stale.

    Stale: the entry changed since the proposal was made (its version moved), so the
    proposal no longer says what a person would be approving.
    """
    proposal = get_proposal(session, proposal_id, lock=True)
    _require_pending(proposal)
    if proposal.kind != "change":
        raise Conflict(
            f"Proposal {proposal.id} names no entry: read its document, record the changes it makes "
            "(POST /v1/lists/{list}/entries/{country}/changes), then reject it with a reason.",
            state=proposal.state,
        )
    # A change proposal always names its entry and status.
    assert proposal.list_id is not None and proposal.country_code is not None and proposal.status is not None
    control_list = lookups.get_list(session, proposal.list_id)
    request = ChangeRequest(
        status=Status(proposal.status),
        effective_on=proposal.effective_on,
        expected_effective_on=proposal.expected_effective_on,
        note=proposal.note,
        sources=proposal.sources,
    )
    try:
        recorded = record_status_change(
            session,
            control_list,
            proposal.country_code,
            request,
            recorded_at=recorded_at,
            actor=actor,
            expected_versions={proposal.base_version},
        )
    except VersionMismatch as exc:
        _decide(
            session,
            proposal,
            ProposalState.STALE,
            actor,
            # Frees the document's key: importing it again may propose afresh.
            dedupe_key=f"{proposal.dedupe_key}|stale:{proposal.id}",
            reason=f"Overtaken: the entry is at version {exc.extensions['current_version']}, "
            f"not {proposal.base_version} as when proposed; import the document again to re-propose.",
        )
        audit.record(session, actor, "proposal.stale", f"proposal:{proposal.id}", reason=proposal.reason)
        return Decision(proposal=proposal)
    _decide(session, proposal, ProposalState.APPROVED, actor, change_id=recorded.change.id)
    audit.record(
        session,
        actor,
        "proposal.approved",
        f"proposal:{proposal.id}",
        change_id=recorded.change.id,
        list_id=proposal.list_id,
        country=proposal.country_code,
        status=proposal.status,
    )
    return Decision(proposal=proposal, recorded=recorded)


def reject(session: Session, proposal_id: int, reason: str, *, actor: Actor) -> Proposal:
    proposal = get_proposal(session, proposal_id, lock=True)
    _require_pending(proposal)
    _decide(session, proposal, ProposalState.REJECTED, actor, reason=reason)
    audit.record(session, actor, "proposal.rejected", f"proposal:{proposal.id}", reason=reason)
    return proposal


def list_proposals(
    session: Session,
    *,
    limit: int,
    before: int | None = None,
    state: str | None = None,
    list_id: str | None = None,
    country_code: str | None = None,
    origin: str | None = None,
) -> list[Proposal]:
    """Newest first; up to limit + 1 rows (the extra one says there is more)."""
    query = select(Proposal).order_by(Proposal.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(Proposal.id < before)
    if state is not None:
        query = query.where(Proposal.state == state)
    if list_id is not None:
        query = query.where(Proposal.list_id == list_id)
    if country_code is not None:
        query = query.where(Proposal.country_code == country_code)
    if origin is not None:
        query = query.where(Proposal.origin == origin)
    return list(session.scalars(query))
