"""The audit log: who changed lists and webhook subscriptions, when, in which request.

Status changes carry their own actor and request id; everything else an API key
changes is recorded here, in the same transaction as the change.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import clock
from service.domain.jsonable import jsonable
from service.models import AuditEntry
from service.vocabulary import Role


@dataclass(frozen=True)
class Actor:
    """Who does something: the API key's name and role, and the request's id (None for the system)."""

    name: str | None
    request_id: str | None = None
    role: Role | None = None


SYSTEM = Actor(name=None)


def record(session: Session, actor: Actor, action: str, subject: str, **details: Any) -> AuditEntry:
    entry = AuditEntry(
        at=clock.utcnow(),
        actor=actor.name,
        request_id=actor.request_id,
        action=action,
        subject=subject,
        details=jsonable(details),
    )
    session.add(entry)
    return entry


def entries(
    session: Session, *, limit: int, before: int | None = None, subject: str | None = None
) -> list[AuditEntry]:
    """Newest first; `before` is the id to page back from."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    return list(session.scalars(query))
