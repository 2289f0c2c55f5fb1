"""Engine and per-request session, wired into Flask with `init_app`."""

import contextlib
import copy
import logging
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, String, create_engine, event
from sqlalchemy.engine import Compiled, Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type, so values are stored as naive UTC and given
    their zone back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class utc_timestamp(FunctionElement[str]):  # noqa: N801 - a SQL function, named like one
    """A UTCDateTime column as RFC 3339 text in UTC, written by the database as Python's isoformat
    writes it (`2026-02-20T14:05:00.123456Z`, and `2026-02-20T14:05:00Z` for a whole second): for
    answers that only print the moment (the event feed), no datetime per row."""

    type = String()
    inherit_cache = True


@compiles(utc_timestamp, "sqlite")
def _utc_timestamp_sqlite(element, compiler, **kw):
    # Stored as naive UTC text, `2026-02-20 14:05:00.123456`. 'Z' is only ever the last character,
    # so '.000000Z' can only be a whole second's fraction.
    column = compiler.process(element.clauses, **kw)
    return f"replace(replace({column}, ' ', 'T') || 'Z', '.000000Z', 'Z')"


@compiles(utc_timestamp, "postgresql")
def _utc_timestamp_postgresql(element, compiler, **kw):
    column = compiler.process(element.clauses, **kw)
    stamp = f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"replace({stamp}, '.000000Z', 'Z')"


def normalise_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean PostgreSQL through psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **options) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, **options)
    if not options.get("pool_pre_ping"):

        def ping_if_idle(dbapi_connection, record, _proxy) -> None:
            _ping_if_idle(engine.dialect, dbapi_connection, record)

        event.listen(engine, "checkin", _note_checkin)
        event.listen(engine, "checkout", ping_if_idle)
    return engine


# A pooled connection idle longer than this is pinged before use (a server restart or an idle
# timeout may have closed it meanwhile). pool_pre_ping pinged on every checkout: a round trip
# per request, which under load cost as much as a statement. One back within a second is used
# as it is; if the server went away in that second, the request answers 503 (Retry-After)
# and the pool reconnects everything on the next checkout, as after any lost connection.
PING_AFTER_IDLE = 1.0  # seconds
_CHECKED_IN = "exportctl.checked_in"


def _note_checkin(_dbapi_connection, record) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _ping_if_idle(dialect: Dialect, dbapi_connection, record) -> None:
    """Ping a connection that sat idle in the pool; DisconnectionError makes the pool replace it
    (and try again) instead of handing a dead one to the request."""
    checked_in = record.info.pop(_CHECKED_IN, None)
    if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE:
        return  # just connected, or back a moment ago
    try:
        alive = dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        raise DisconnectionError(f"an idle pooled connection was lost: {error}") from error
    if not alive:
        raise DisconnectionError("an idle pooled connection did not answer a ping")


class OwnConnections:
    """A DBAPI connection of each thread's own, detached from the pool and outside any transaction
    (autocommit on PostgreSQL; on SQLite a SELECT opens none), so each read sees the latest
    commit: for the reads nearly every request makes (the data version, feed pages, a lookup's
    changes), which would otherwise pay a pool checkout and SQLAlchemy's statement and result
    machinery (186 us against 41 us for a lookup's read on SQLite). Never for a write's reads:
    they must see what the write's own transaction has not committed yet."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._compiled: dict[Hashable, CompiledRead] = {}

    def rows(
        self,
        shape: Hashable,
        statement: Callable[[], SelectBase],
        values: dict[str, Any],
        *,
        typed: bool = True,
    ) -> list[Any]:
        """The rows of the SELECT that `statement()` builds for `shape` (built and compiled once per
        shape), run with `values` on this thread's connection (reconnecting once if it was lost).
        `typed`: rows as SQLAlchemy would give them (named, every column converted by its type);
        otherwise as the driver gives them (the caller chose columns that need no conversion)."""
        read = self._compiled.get(shape)
        if read is None:
            read = self._compiled.setdefault(shape, CompiledRead.of(statement(), self.engine.dialect, typed))
        parameters = read.parameters(values)
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        for attempt in (1, 2):
            connection = self.connection()
            try:
                cursor = read.cursor(connection)
                try:
                    cursor.execute(read.compiled.string, parameters)
                    return read.typed(cursor.fetchall())
                finally:
                    cursor.close()
            except dbapi_error as exc:
                self.forget(connection)  # the server may have restarted: reconnect once
                if attempt == 2:
                    raise DBAPIError.instance(read.compiled.string, parameters, exc, dbapi_error) from exc
        raise AssertionError("unreachable")

    def connection(self) -> Any:
        """This thread's connection, opened on first use (a sqlite3 or psycopg connection)."""
        return getattr(self.local, "connection", None) or self._connect()

    def _connect(self) -> Any:
        proxy = self.engine.raw_connection()
        proxy.detach()  # ours for the thread's life, not the pool's
        connection: Any = proxy.dbapi_connection
        if self.engine.dialect.name == "postgresql":
            connection.autocommit = True
        self.local.connection = connection
        with self._lock:
            self._opened.append(connection)
        return connection

    def forget(self, connection: Any) -> None:
        """Close and drop a connection that failed (the server may have restarted): the thread's
        next read opens another."""
        self.local.connection = None
        with self._lock:
            if connection in self._opened:
                self._opened.remove(connection)
        with contextlib.suppress(Exception):
            connection.close()

    def close(self) -> None:
        """Close every connection opened here (tests; process exit does it otherwise)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.close()


def _numbered(dialect: Dialect) -> Dialect:
    """The (connected) dialect, writing parameters as PostgreSQL's own $1, $2 (as asyncpg's does):
    SQL that needs no conversion by the driver (see CompiledRead.cursor)."""
    numbered = copy.copy(dialect)
    numbered.paramstyle = "numeric_dollar"
    numbered.positional = True
    return numbered


@dataclass(frozen=True, slots=True)
class CompiledRead:
    """A SELECT compiled once for one dialect, to run on a plain DBAPI cursor: its SQL, how values
    become its parameters and how its columns come back, by the columns' own types (the bind and
    result processing SQLAlchemy applies: a datetime stored as it stores one, JSON decoded)."""

    compiled: Compiled
    positions: tuple[str, ...] | None  # parameter names in order (SQLite's ?, PostgreSQL's $n); None: named
    binds: dict[str, Callable[[Any], Any]]
    # Per column, its result processor (None: the driver's value as it is); None: no conversion.
    results: tuple[Callable[[Any], Any] | None, ...] | None
    row: Any  # the named tuple class of the columns, when typed

    @classmethod
    def of(cls, statement: SelectBase, dialect: Dialect, typed: bool) -> "CompiledRead":
        compiled = statement.compile(dialect=_numbered(dialect) if dialect.name == "postgresql" else dialect)
        binds: dict[str, Callable[[Any], Any]] = {  # by the SQL's names (an anonymous one's is made up)
            name: process
            for bind, name in compiled.bind_names.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        positions = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        if not typed:
            return cls(compiled, positions, binds, None, None)
        columns = list(statement.selected_columns)
        results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
        return cls(compiled, positions, binds, results, namedtuple("Row", [c.key for c in columns]))  # type: ignore[misc]

    def cursor(self, connection: Any) -> Any:
        """A cursor to run it on: on PostgreSQL one taking $1 placeholders as they are (psycopg's
        RawCursor). A psycopg cursor parses a query's %(name)s placeholders at every execute, and
        keeps what it parsed only for queries under 4 KB: a lookup's statement is longer, and
        parsing it again was ~50 us of CPU per lookup."""
        if self.positions is not None and self.compiled.dialect.paramstyle == "numeric_dollar":
            return psycopg.RawCursor(connection)
        return connection.cursor()

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        found = dict(self.compiled.construct_params(values) or {})
        for name, process in self.binds.items():
            found[name] = process(found[name])
        return tuple(found[name] for name in self.positions) if self.positions is not None else found

    def typed(self, fetched: list[Any]) -> list[Any]:
        if self.results is None:
            return fetched
        make, processors = self.row._make, [(n, p) for n, p in enumerate(self.results) if p is not None]
        if not processors:
            return [make(row) for row in fetched]
        converted = []
        for row in fetched:
            values = list(row)
            for n, process in processors:
                values[n] = process(values[n])
            converted.append(make(values))
        return converted


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer (API workers and the webhook worker).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker


def begin_write(session: Session) -> None:
    """Start a write transaction that reads a consistent, current state.

    PostgreSQL: nothing to do (writers lock the rows they change with FOR UPDATE).
    SQLite: take the database's write lock up front (BEGIN IMMEDIATE), so what
    the transaction reads cannot change under it before it writes.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")  # as it is: nothing to compile


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["exportctl.db"] = Database(
        engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False)
    )
    # Per request, not per app context: a test's pushed app context spans many requests.
    app.teardown_request(_close_session)
    app.teardown_appcontext(_close_session)


def database() -> Database:
    return current_app.extensions["exportctl.db"]


def session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = database().sessionmaker()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    """Close the request's session. The response is already made: a connection that dies as it
    is given back (the database dropped under it) is discarded and logged, never a failed request."""
    db_session = g.pop("db_session", None)
    if db_session is None:
        return
    try:
        db_session.close()
    except Exception:  # noqa: BLE001
        log.warning("closing the request's session failed; discarding its connection", exc_info=True)
        with contextlib.suppress(Exception):
            db_session.invalidate()
