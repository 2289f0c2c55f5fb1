"""Administering lists: other jurisdictions' lists are data, not code."""

from typing import Any

from sqlalchemy.orm import Session

from service import clock
from service.domain import lookups
from service.domain.errors import Conflict
from service.domain.events import EventType, emit
from service.domain.jsonable import jsonable
from service.models import ControlList
from service.webhooks.fanout import fan_out

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


def _event_data(control_list: ControlList, actor: str | None, request_id: str | None) -> dict:
    return {**jsonable(lookups.list_document(control_list)), "actor": actor, "request_id": request_id}


def create_list(
    session: Session,
    fields: dict[str, Any],
    *,
    actor: str | None = None,
    request_id: str | None = None,
) -> ControlList:
    if session.get(ControlList, fields["id"]) is not None:
        raise Conflict(f"A list with id {fields['id']!r} already exists.")
    now = clock.utcnow()
    control_list = ControlList(
        **{**fields, "sources": jsonable(fields.get("sources") or [])}, recorded_at=now, updated_at=now
    )
    session.add(control_list)
    session.flush()
    event = emit(
        session,
        EventType.LIST_CREATED,
        _event_data(control_list, actor, request_id),
        list_id=control_list.id,
    )
    fan_out(session, event)
    return control_list


def update_list(
    session: Session,
    control_list: ControlList,
    changes: dict[str, Any],
    *,
    actor: str | None = None,
    request_id: str | None = None,
) -> ControlList:
    for name in DESCRIPTIVE_FIELDS:
        if name in changes:
            setattr(control_list, name, jsonable(changes[name]))
    control_list.updated_at = clock.utcnow()
    session.flush()
    event = emit(
        session,
        EventType.LIST_UPDATED,
        _event_data(control_list, actor, request_id),
        list_id=control_list.id,
    )
    fan_out(session, event)
    return control_list
