"""Events: every change to the data becomes a numbered event, in the writer's transaction."""

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from service import clock
from service.models import (
    ControlList,
    Counter,
    Entry,
    Event,
    ListCheck,
    Observation,
    StatusChange,
    Treatment,
)
from service.vocabulary import EventType

EVENTS_COUNTER = "events"
# Bumped by every public event (a change to what the API serves): the version that
# cached documents are keyed by. Operational events do not move it.
DATA_COUNTER = "data"
DATA_VERSION_QUERY = "SELECT value FROM counters WHERE name = 'data'"  # the raw read lookups make


PUBLIC_EVENT_TYPES = [t.value for t in EventType if t.public]
OPT_IN_EVENT_TYPES = frozenset(t.value for t in EventType if t.opt_in)


def next_sequence(session: Session) -> int:
    """Take the next event number. The row lock it takes is held until commit,
    so concurrent writers commit their events in number order.

    Pending objects are flushed first, as the ORM statement this was did: their data-version
    touch comes before, so every writer locks the data counter before the events counter
    (two writers taking them in opposite orders could deadlock on PostgreSQL)."""
    session.flush()
    return session.connection().execute(_NEXT_SEQUENCE).scalar_one()  # one round trip: UPDATE … RETURNING


# Every write runs these, so they are built once (a statement memoises its cache key) and
# run on the session's connection as Core statements: the ORM's bulk-update path (autoflush,
# session synchronisation, execute hooks) cost about six times the statement itself, and
# counters are no mapped objects a session holds. (do_orm_execute does not see them: they
# move no cached data but the data version itself.)
_COUNTERS = cast(Table, Counter.__table__)
_NEXT_SEQUENCE = (
    update(_COUNTERS)
    .where(_COUNTERS.c.name == EVENTS_COUNTER)
    .values(value=_COUNTERS.c.value + 1)
    .returning(_COUNTERS.c.value)
)


def current_sequence(connection: Connection) -> int:
    """The last event number."""
    return connection.execute(select(Counter.value).where(Counter.name == EVENTS_COUNTER)).scalar_one()


def touch_data(session: Session) -> None:
    """Move the data version: what the API serves changed. Once per transaction is enough."""
    if session.info.get(_TOUCHED):
        return
    session.info[_TOUCHED] = True
    session.connection().execute(_TOUCH_DATA)


_TOUCH_DATA = update(_COUNTERS).where(_COUNTERS.c.name == DATA_COUNTER).values(value=_COUNTERS.c.value + 1)


# The tables every cached document is built from. Any write to them moves the data version,
# so no writer can leave the cache stale by forgetting to (webhooks, keys, deliveries and
# operational events are not among them: they leave the cache alone).
CACHED_MODELS: tuple[type, ...] = (ControlList, Entry, StatusChange, Observation, Treatment, ListCheck)
_TOUCHED = "exportctl.data_touched"


def _touches_cache(instance: object) -> bool:
    if isinstance(instance, Event):
        return bool(instance.public)
    return isinstance(instance, CACHED_MODELS)


@event.listens_for(Session, "before_flush")
def _bump_on_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    if any(_touches_cache(i) for i in (*session.new, *session.dirty, *session.deleted)):
        touch_data(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_write(state: ORMExecuteState) -> None:
    """Bulk UPDATE/DELETE statements on cached tables skip the flush: bump for them too."""
    if not (state.is_update or state.is_delete):  # first: most statements are reads
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ in CACHED_MODELS:
        touch_data(state.session)


@event.listens_for(Session, "after_transaction_end")
def _forget_touch(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: the next one bumps anew
        session.info.pop(_TOUCHED, None)


def emit(
    session: Session,
    type: EventType,
    data: dict[str, Any],
    *,
    country_code: str | None = None,
    list_id: str | None = None,
    change_id: int | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Record an event in the session's transaction (after what it has pending) and return it.

    The row is written by one Core INSERT, not a flush of the session (a unit of work for one
    row cost several times the statement), so the Event returned is not in the session:
    events are never edited, and a query in this transaction finds the row.
    """
    if type.public:
        touch_data(session)  # a public event moves the data version (data counter first, see next_sequence)
    row = {
        "id": next_sequence(session),
        "type": type.value,
        "occurred_at": occurred_at or clock.utcnow(),
        "country_code": country_code,
        "list_id": list_id,
        "change_id": change_id,
        "data": data,
        "public": type.public,
    }
    session.connection().execute(_INSERT_EVENT, row)
    return Event(**row)


_INSERT_EVENT = cast(Table, Event.__table__).insert()


def public_id(sequence: int) -> str:
    return f"evt_{sequence}"


def timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event_json(sequence: int, type: str, occurred_at: datetime | str, data_json: str | None) -> str:
    """`event_document` as JSON text (keys sorted, compact, as Flask writes it), with the stored
    JSON text of its data spliced in as it is: a feed page or a webhook body costs no decoding
    and re-encoding of every payload."""
    stamp = occurred_at if isinstance(occurred_at, str) else timestamp(occurred_at)
    return (
        f'{{"data":{data_json or "null"},"id":"{public_id(sequence)}","occurred_at":"{stamp}",'
        f'"sequence":{sequence},"timestamp":"{stamp}","type":{json.dumps(type)}}}'
    )


def event_document(event: Event) -> dict[str, Any]:
    """The event as the feed serves it and webhooks carry it (Standard Webhooks shape)."""
    occurred_at = timestamp(event.occurred_at)
    return {
        "id": public_id(event.id),
        "sequence": event.id,
        "type": event.type,
        "timestamp": occurred_at,
        "occurred_at": occurred_at,
        "data": event.data,
    }
