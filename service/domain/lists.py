"""Administering lists: other jurisdictions' lists are data, not code."""

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import clock
from service.domain import audit, lookups
from service.domain.audit import Actor
from service.domain.errors import Conflict
from service.domain.events import emit
from service.domain.jsonable import jsonable
from service.domain.outbox import fan_out
from service.models import ControlList
from service.vocabulary import EventType

# What a list says about itself (PATCH may change these) ...
DESCRIPTIVE_FIELDS = (
    "code",
    "name",
    "jurisdiction",
    "authority",
    "legal_basis",
    "url",
    "description",
    "sources",
)
# ... and what it means, fixed at creation: whether it restricts, and what absence from it proves.
DEFINING_FIELDS = ("effect", "membership_complete", "membership_complete_from")


def _event_data(control_list: ControlList, actor: Actor) -> dict[str, Any]:
    return {
        **jsonable(lookups.list_document(control_list)),
        "actor": actor.name,
        "request_id": actor.request_id,
    }


def _require_free_code(session: Session, code: str, jurisdiction: str, list_id: str) -> None:
    """Lists are named by code too (`?list=D:1`, receipts): within a jurisdiction no two lists
    share one, in any case (across jurisdictions a code names several, and asking by it says so),
    and no code is another list's id (found first, that list would always answer for it)."""
    taken = session.scalar(
        select(ControlList.id).where(
            func.lower(ControlList.code) == code.lower(),
            ControlList.jurisdiction == jurisdiction,
            ControlList.id != list_id,
        )
    )
    if taken is not None:
        raise Conflict(
            f"The code {code!r} is taken in {jurisdiction} by the list {taken!r}: "
            "lists are named by code too."
        )
    named = session.scalar(
        select(ControlList.id).where(func.lower(ControlList.id) == code.lower(), ControlList.id != list_id)
    )
    if named is not None:
        raise Conflict(
            f"The code {code!r} is the id of the list {named!r}: asked for by it, that list would "
            "always be found, never this one."
        )


def _require_id_not_a_code(session: Session, list_id: str) -> None:
    """A list is found by its id before any code (`lookups.find_list`): an id that is another
    list's code would silently take its place wherever clients name that list by its code."""
    coded = session.scalar(select(ControlList.id).where(func.lower(ControlList.code) == list_id.lower()))
    if coded is not None:
        raise Conflict(
            f"The id {list_id!r} is the code of the list {coded!r}: asked for by that code, this "
            "list would be found instead."
        )


def create_list(
    session: Session,
    fields: dict[str, Any],
    *,
    actor: Actor,
    recorded_at: datetime | None = None,
    publish: bool = True,
) -> ControlList:
    """A new list, its list.created event and audit entry (queued for subscribers with `publish`)."""
    if session.get(ControlList, fields["id"]) is not None:
        raise Conflict(f"A list with id {fields['id']!r} already exists.")
    _require_id_not_a_code(session, fields["id"])
    _require_free_code(session, fields["code"], fields["jurisdiction"], fields["id"])
    recorded_at = recorded_at or clock.utcnow()
    control_list = ControlList(
        **{**fields, "sources": jsonable(fields.get("sources") or [])},
        recorded_at=recorded_at,
        updated_at=recorded_at,
    )
    session.add(control_list)
    session.flush()
    event = emit(session, EventType.LIST_CREATED, _event_data(control_list, actor), list_id=control_list.id)
    audit.record(session, actor, "list.created", f"list:{control_list.id}")
    if publish:
        fan_out(session, event)
    return control_list


def update_list(
    session: Session, control_list: ControlList, changes: dict[str, Any], *, actor: Actor
) -> ControlList:
    changed = [name for name in DESCRIPTIVE_FIELDS if name in changes]
    if "code" in changes or "jurisdiction" in changes:
        code = changes.get("code", control_list.code)
        _require_free_code(
            session, code, changes.get("jurisdiction", control_list.jurisdiction), control_list.id
        )
    # The audit log keeps what was replaced, so a list's past wording can be rebuilt.
    previous = {name: jsonable(getattr(control_list, name)) for name in changed}
    for name in changed:
        setattr(control_list, name, jsonable(changes[name]))
    control_list.updated_at = clock.utcnow()
    session.flush()
    event = emit(session, EventType.LIST_UPDATED, _event_data(control_list, actor), list_id=control_list.id)
    audit.record(session, actor, "list.updated", f"list:{control_list.id}", **changes, previous=previous)
    fan_out(session, event)
    return control_list
