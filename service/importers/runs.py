"""One import: parse a publication whole, then compare and propose in the caller's transaction.

Parsing comes first and fails loudly, so a document the parser does not
recognise changes nothing; the caller commits the whole report or nothing.
"""

from datetime import date

from sqlalchemy.orm import Session

from service.domain.audit import Actor
from service.importers import ecfr, federal_register
from service.importers.federal_register import FRDocument
from service.importers.proposals import Document, ImportReport, import_announced, import_ecfr_table


def import_ecfr(
    session: Session, data: bytes | str, issue_date: date, *, actor: Actor, url: str | None = None
) -> ImportReport:
    table = ecfr.parse_part_740(data, issue_date)
    return import_ecfr_table(session, table, issue_date, actor=actor, url=url)


def _note(document: FRDocument) -> str:
    if document.public_inspection:
        assert document.filed_on is not None  # a public-inspection filing always has its filing date
        return (
            f"{document.title}: filed for public inspection on {document.filed_on.isoformat()}, "
            f"scheduled for publication in the Federal Register on {document.publication_date.isoformat()}. "
            "Announced, not yet law: the status in force is unchanged until the rule takes effect."
        )
    effective = (
        f"effective {document.effective_on.isoformat()}"
        if document.effective_on
        else "no effective date in the API's data (the publication date is used: check the rule's DATES)"
    )
    citation = f"{document.citation}, " if document.citation else ""
    return (
        f"{document.title} ({citation}FR Doc. {document.document_number}), published "
        f"{document.publication_date.isoformat()}, {effective}."
    )


def import_fr_document(
    session: Session, document: FRDocument, full_text: bytes | str | None, *, actor: Actor
) -> ImportReport:
    """Proposals for the entries a rule or public-inspection filing changes; a review proposal
    for whatever of it cannot be mapped with confidence."""
    if document.public_inspection:
        assert document.filed_on is not None  # a public-inspection filing always has its filing date
        on = document.filed_on
    else:
        on = document.effective_on or document.publication_date
    changes: dict[tuple[str, str], bool] = {}
    review = None
    if full_text is None:
        review = "The document's full text was not read, so the entries it changes are not known: read it."
    else:
        amendments = federal_register.parse_amendments(full_text)
        for column, code, member in amendments.changes:
            changes[(column, code)] = member
        if amendments.unmapped:
            review = "Parts of the text could not be mapped to entries with confidence: " + "; ".join(
                amendments.unmapped
            )
        elif not changes and (amendments.touches_supplement or 740 in document.cfr_parts):
            review = "No Country Group entry could be read from the amendments to part 740: read them."
    return import_announced(
        session,
        Document(origin="federal-register", key=document.key, details=document.details()),
        [(column, code, member, on) for (column, code), member in changes.items()],
        pending=document.public_inspection,
        sources=[federal_register.source(document)],
        note=_note(document),
        review=review,
        actor=actor,
    )
