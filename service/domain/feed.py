"""The event feed: keyset pages by sequence number, so the millionth page costs what the first does.

Only public events (data changes) are in the feed; webhook.* events are operational
and go only to the subscriptions that ask for them.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, Select, Text, cast, select
from sqlalchemy.orm import Session

from service.db import utc_timestamp
from service.domain.errors import NotFound
from service.domain.events import event_json
from service.models import Event


@dataclass(frozen=True)
class FeedFilter:
    country_code: str | None = None
    list_id: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def criteria(self) -> list[ColumnElement[bool]]:
        criteria: list[ColumnElement[bool]] = [Event.public.is_(True)]
        if self.country_code:
            criteria.append(Event.country_code == self.country_code)
        if self.list_id:
            criteria.append(Event.list_id == self.list_id)
        if self.type:
            criteria.append(Event.type == self.type)
        if self.since:
            criteria.append(Event.occurred_at >= self.since)
        if self.until:
            criteria.append(Event.occurred_at < self.until)
        return criteria


def events_after(
    session: Session, after: int, limit: int, feed_filter: FeedFilter
) -> tuple[list[Event], bool]:
    """Up to `limit` events after sequence `after`, oldest first, and whether more are waiting."""
    rows = list(
        session.scalars(
            select(Event).where(Event.id > after, *feed_filter.criteria()).order_by(Event.id).limit(limit + 1)
        )
    )
    return rows[:limit], len(rows) > limit


def latest_events(session: Session, limit: int, feed_filter: FeedFilter, after: int = 0) -> list[Event]:
    """The newest `limit` events (newest first), as feed readers expect."""
    return list(
        session.scalars(
            select(Event)
            .where(Event.id > after, *feed_filter.criteria())
            .order_by(Event.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True, slots=True)
class FeedRow:
    """An event as the feed serves it, its data still the JSON text stored: a page of them is
    written out without decoding and re-encoding every payload (see events.event_json)."""

    id: int
    type: str
    occurred_at: str  # RFC 3339, as events.timestamp writes it
    data_json: str

    def json(self) -> str:
        return event_json(self.id, self.type, self.occurred_at, self.data_json)


FeedColumns = Select[int, str, str, str]


def _rows(session: Session, query: FeedColumns) -> list[FeedRow]:
    # Core, not the ORM: plain rows, and no type processing left to do on them. One statement
    # in autocommit (its own consistent snapshot): no BEGIN and ROLLBACK round trips around
    # it, which on PostgreSQL were half a cold page's waiting.
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        found = connection.execute(query).all()
    return [
        FeedRow(id, type, stamp[:-8] + "Z" if stamp.endswith(".000000Z") else stamp, data)
        for id, type, stamp, data in found
    ]


def _row_columns() -> FeedColumns:
    # The payload as the JSON text stored (PostgreSQL's json type keeps the text it was given),
    # and the moment as text too: parsing a datetime per row only to print it again is most
    # of the cost of a page.
    return select(Event.id, Event.type, utc_timestamp(Event.occurred_at), cast(Event.data, Text))


def page_after(
    session: Session, after: int, limit: int, feed_filter: FeedFilter
) -> tuple[list[FeedRow], bool]:
    """`events_after` as FeedRows: one keyset read on the sequence (the primary key, or the
    filter's (column, id) index), whatever the cursor."""
    rows = _rows(
        session,
        _row_columns().where(Event.id > after, *feed_filter.criteria()).order_by(Event.id).limit(limit + 1),
    )
    return rows[:limit], len(rows) > limit


def latest_page(session: Session, limit: int, feed_filter: FeedFilter, after: int = 0) -> list[FeedRow]:
    """`latest_events` as FeedRows (newest first)."""
    return _rows(
        session,
        _row_columns()
        .where(Event.id > after, *feed_filter.criteria())
        .order_by(Event.id.desc())
        .limit(limit),
    )


def get_event(session: Session, sequence: int) -> Event:
    event = session.get(Event, sequence) if 0 < sequence < 2**63 else None
    if event is None or not event.public:
        raise NotFound(f"No event evt_{sequence}.")
    return event
