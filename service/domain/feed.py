"""The event feed: keyset pages by sequence number, so the millionth page costs what the first does.

Only public events (data changes) are in the feed; webhook.* events are operational
and go only to the subscriptions that ask for them.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, Select, Text, bindparam, cast, select
from sqlalchemy.orm import Session

from service.db import OwnConnections, utc_timestamp
from service.domain.errors import NotFound
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

    def values(self) -> dict[str, Any]:
        """The filters that are set, by name (the feed's query takes them as parameters)."""
        values = {
            "country_code": self.country_code,
            "list_id": self.list_id,
            "type": self.type,
            "since": self.since,
            "until": self.until,
        }
        return {name: value for name, value in values.items() if value}


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


# An event as the feed serves it: (sequence, type, occurred_at as RFC 3339 text as
# events.timestamp writes it, data as the JSON text stored). The database's rows as they come:
# a page is written out without decoding and re-encoding every payload, and without an object
# per row (see items_json).
FeedRow = tuple[int, str, str, str]


def row_json(row: FeedRow) -> str:
    """The event as events.event_json writes it, byte for byte, with the type's JSON looked up:
    one expression per row is most of a cold page's Python."""
    sequence, type, stamp, data = row
    return (
        f'{{"data":{data or "null"},"id":"evt_{sequence}","occurred_at":"{stamp}","sequence":{sequence},'
        f'"timestamp":"{stamp}","type":{_TYPE_JSON.get(type) or _type_json(type)}}}'
    )


def items_json(rows: Iterable[FeedRow]) -> str:
    """A page's items: the rows' JSON, comma separated."""
    return ",".join(map(row_json, rows))


_TYPE_JSON: dict[str, str] = {}


def _type_json(type: str) -> str:
    if len(_TYPE_JSON) > 1000:  # event types are a vocabulary: never more than a few
        _TYPE_JSON.clear()
    _TYPE_JSON[type] = found = json.dumps(type)
    return found


_FILTER_COLUMNS = {
    "country_code": lambda: Event.country_code == bindparam("country_code"),
    "list_id": lambda: Event.list_id == bindparam("list_id"),
    "type": lambda: Event.type == bindparam("type"),
    "since": lambda: Event.occurred_at >= bindparam("since"),
    "until": lambda: Event.occurred_at < bindparam("until"),
}


class FeedReader(OwnConnections):
    """Reads feed pages on a DBAPI connection of each thread's own, outside any transaction.

    A cold page is one indexed read; what surrounded it cost more than the read itself: a pool
    checkout (and its pre-ping round trip on PostgreSQL), SQLAlchemy's statement compilation
    and result machinery. Here each query shape is compiled once, runs on a plain cursor (a
    prepared statement on PostgreSQL, in autocommit; on SQLite a SELECT opens no transaction),
    and its rows are returned as they come. Each statement sees the latest commit.
    """

    def page_after(self, after: int, limit: int, feed_filter: FeedFilter) -> tuple[list[FeedRow], bool]:
        """`events_after` as FeedRows: one keyset read on the sequence (the primary key, or the
        filter's (column, id) index), whatever the cursor."""
        rows = self._rows(feed_filter, after, limit + 1, descending=False)
        return rows[:limit], len(rows) > limit

    def latest_page(self, limit: int, feed_filter: FeedFilter, after: int = 0) -> list[FeedRow]:
        """`latest_events` as FeedRows (newest first)."""
        return self._rows(feed_filter, after, limit, descending=True)

    def _rows(self, feed_filter: FeedFilter, after: int, limit: int, *, descending: bool) -> list[FeedRow]:
        values = feed_filter.values()
        names = tuple(values)

        def statement() -> Select[int, str, str, str]:
            return (
                select(Event.id, Event.type, utc_timestamp(Event.occurred_at), cast(Event.data, Text))
                .where(
                    Event.id > bindparam("after", type_=BigInteger),
                    Event.public.is_(True),
                    *(_FILTER_COLUMNS[name]() for name in names),
                )
                .order_by(Event.id.desc() if descending else Event.id)
                .limit(bindparam("limit", type_=Integer))
            )

        shape = ("feed", names, descending)
        return self.rows(shape, statement, {**values, "after": after, "limit": limit}, typed=False)


def get_event(session: Session, sequence: int) -> Event:
    event = session.get(Event, sequence) if 0 < sequence < 2**63 else None
    if event is None or not event.public:
        raise NotFound(f"No event evt_{sequence}.")
    return event
