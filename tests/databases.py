"""A clean database for every test, from a migrated (and optionally seeded) template.

SQLite: each test gets a copy of the template file.
PostgreSQL (TEST_DATABASE_URL): creating a database per test costs far more than the test itself, so
the template is cloned once per session into a working database, and before each test that database is
put back to the template's exact state: every other connection to it ended, every table emptied and
refilled (COPY) with the template's rows, every sequence set to the template's value. No test sees
another's writes, and ids come out as on a fresh template (evt_1, webhook 1 ...).
`create` still gives a database of its own, for the few tests that rename, move or migrate it.
"""

import itertools
import os
import shutil
from contextlib import closing
from datetime import datetime
from pathlib import Path
from unittest.mock import patch

import psycopg
from psycopg import sql
from sqlalchemy import Integer, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service import clock, migrate, seeding
from service.db import make_engine, normalise_url
from service.models import Base  # models registered before migrations run

_counter = itertools.count()


def _prepare(url: str, seeded: bool, now: datetime) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    if seeded:
        # Seeded events occur at load time: the tests' fixed "now", whatever the real date.
        with patch.object(clock, "utcnow", lambda: now), Session(engine) as session:
            seeding.load_seeds(session)
    engine.dispose()


class SQLiteTemplates:
    backend = "sqlite"

    def __init__(self, directory: Path, now: datetime):
        self.directory = directory
        self.now = now
        self._templates: dict[bool, Path] = {}

    def _template(self, seeded: bool) -> Path:
        if seeded not in self._templates:
            path = self.directory / f"template-{'seeded' if seeded else 'empty'}.sqlite3"
            _prepare(f"sqlite:///{path}", seeded, self.now)
            self._templates[seeded] = path
        return self._templates[seeded]

    def create(self, seeded: bool = True) -> str:
        path = self.directory / f"test-{os.getpid()}-{next(_counter)}.sqlite3"
        shutil.copyfile(self._template(seeded), path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        path = Path(make_url(url).database)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    # A file copy is already cheap: a clean database for a test is a fresh one.
    checkout = create
    checkin = drop


class Snapshot:
    """The rows and sequence values of a prepared PostgreSQL database, and a way to put a working copy
    of it back to them after a test, touching only what the test changed.

    Statement-level triggers (in a schema of their own, which the models and migrations never see)
    note which tables each statement wrote and how. Then, in one transaction:
    - a table that only had rows inserted loses the rows whose id is above the template's highest;
    - any other changed table is compared with the template's rows (loaded into a temporary table):
      rows whose key is not the template's are deleted (children first), and the template's rows are
      put back where missing or different (parents first), so unchanged rows and tables are left be;
    - every sequence is set back to the template's value (a failed insert uses up ids too).
    The row counts are then checked against the template's; should anything not match (or fail),
    everything is emptied and refilled from the template instead.
    """

    def __init__(self, connection: psycopg.Connection):
        present = {name for (name,) in connection.execute(_TABLES)} - {"alembic_version"}
        self.tables = {table.name: table for table in Base.metadata.sorted_tables}  # parents first
        assert present == set(self.tables), f"tables not in the models: {present ^ set(self.tables)}"
        self.rows: dict[str, bytes] = {}
        self.counts: dict[str, int] = {}
        self.highest: dict[str, int | None] = {}
        for name, table in self.tables.items():
            with connection.cursor().copy(_sql("COPY {} TO STDOUT (FORMAT binary)", name)) as copy:
                self.rows[name] = b"".join(bytes(block) for block in copy)
            self.counts[name] = connection.execute(_sql("SELECT count(*) FROM {}", name)).fetchone()[0]
            [key] = table.primary_key.columns
            if isinstance(key.type, Integer):
                self.highest[name] = connection.execute(
                    _sql("SELECT coalesce(max({}), 0) FROM {}", key.name, name)
                ).fetchone()[0]
        self.sequences = [
            (name, *connection.execute(_sql("SELECT last_value, is_called FROM {}", name)).fetchone())
            for (name,) in connection.execute(_SEQUENCES)
        ]
        connection.rollback()

    def install(self, connection: psycopg.Connection) -> None:
        """Note every write to the working database (never to the template)."""
        with connection.transaction():
            connection.execute(_TRACKING)
            for name in self.tables:
                connection.execute(_sql(_TRIGGER, name))

    def restore(self, connection: psycopg.Connection) -> None:
        """End every other session on the database (an app or worker a test left open, a killed
        process's backend), then put its rows and sequences back to the template's."""
        connection.execute(_END_OTHER_SESSIONS)
        connection.commit()
        try:
            with connection.transaction():
                self._undo_changes(connection)
        except Exception:  # noqa: BLE001 - whatever the cheap way trips on, the thorough way puts right
            with connection.transaction():
                self._refill_everything(connection)

    def _changes(self, connection: psycopg.Connection) -> dict[str, set[str]]:
        changes: dict[str, set[str]] = {}
        for table, operation in connection.execute(
            "SELECT DISTINCT tbl, op FROM exportctl_test_reset.changed"
        ):
            changes.setdefault(table, set()).add(operation)
        return changes

    def _undo_changes(self, connection: psycopg.Connection) -> None:
        changes = self._changes(connection)
        appended = [t for t, ops in changes.items() if ops == {"INSERT"} and t in self.highest]
        compared = [t for t in self.tables if t in changes and t not in appended]  # parents first
        for name in compared:
            connection.execute(
                _sql("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP", f"tmpl_{name}", name)
            )
            with connection.cursor().copy(_sql("COPY {} FROM STDIN (FORMAT binary)", f"tmpl_{name}")) as copy:
                copy.write(self.rows[name])
        for name in reversed(self.tables):  # children first
            key = self._key(name)
            if name in appended:
                connection.execute(_sql("DELETE FROM {} WHERE {} > %s", name, key), (self.highest[name],))
            elif name in compared:
                connection.execute(
                    _sql(
                        "DELETE FROM {0} t WHERE NOT EXISTS (SELECT FROM {1} s WHERE s.{2} = t.{2})",
                        name,
                        f"tmpl_{name}",
                        key,
                    )
                )
        for name in compared:  # parents first
            columns = [column.name for column in self.tables[name].columns]
            connection.execute(
                sql.SQL(
                    "INSERT INTO {table} AS t SELECT * FROM {template} "
                    "ON CONFLICT ({key}) DO UPDATE SET ({columns}) = ROW({excluded}) "
                    "WHERE ROW(t.*)::text IS DISTINCT FROM ROW(excluded.*)::text"
                ).format(
                    table=sql.Identifier(name),
                    template=sql.Identifier(f"tmpl_{name}"),
                    key=sql.Identifier(self._key(name)),
                    columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                    excluded=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in columns),
                )
            )
        self._reset_sequences(connection)
        for name in changes:
            if connection.execute(_sql("SELECT count(*) FROM {}", name)).fetchone()[0] != self.counts[name]:
                raise _Mismatch(name)

    def _refill_everything(self, connection: psycopg.Connection) -> None:
        connection.execute(
            sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, self.tables)))
        )
        for name in self.tables:
            if self.counts[name]:
                with connection.cursor().copy(_sql("COPY {} FROM STDIN (FORMAT binary)", name)) as copy:
                    copy.write(self.rows[name])
        self._reset_sequences(connection)

    def _reset_sequences(self, connection: psycopg.Connection) -> None:
        for name, value, called in self.sequences:
            connection.execute(
                "SELECT setval(%s::regclass, %s, %s)",
                (sql.Identifier(name).as_string(connection), value, called),
            )
        connection.execute("DELETE FROM exportctl_test_reset.changed")

    def _key(self, name: str) -> str:
        [key] = self.tables[name].primary_key.columns
        return key.name


class _Mismatch(Exception):
    """A table's row count differs from the template's after undoing the changes noted."""


def _sql(statement: str, *names: str) -> sql.Composed:
    return sql.SQL(statement).format(*map(sql.Identifier, names))


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
_SEQUENCES = "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
# Waits (up to 10 s each) until the session has ended, so its locks are gone.
_END_OTHER_SESSIONS = (
    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)
# An append-only log with no key: concurrent writers never wait on each other to note a change.
_TRACKING = """
CREATE SCHEMA exportctl_test_reset;
CREATE UNLOGGED TABLE exportctl_test_reset.changed (tbl text NOT NULL, op text NOT NULL);
CREATE FUNCTION exportctl_test_reset.note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO exportctl_test_reset.changed VALUES (TG_TABLE_NAME, TG_OP);
    RETURN NULL;
END $$;
"""
_TRIGGER = (
    "CREATE TRIGGER zz_exportctl_test_reset AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
    "FOR EACH STATEMENT EXECUTE FUNCTION exportctl_test_reset.note()"
)


class PostgresTemplates:
    backend = "postgresql"

    def __init__(self, url: str, now: datetime):
        self.now = now
        self.base = make_url(normalise_url(url))
        self.prefix = f"{self.base.database}_{os.getpid()}"
        self.admin = make_engine(
            self.base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
        )
        self._templates: dict[bool, str] = {}
        # seeded -> (working database's URL, a connection to it for resets, the template's snapshot)
        self._working: dict[bool, tuple[str, psycopg.Connection, Snapshot]] = {}
        self._dirty: set[bool] = set()

    def _url(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def _execute(self, statement: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(statement))

    def _template(self, seeded: bool) -> str:
        if seeded not in self._templates:
            name = f"{self.prefix}_tmpl_{'seeded' if seeded else 'empty'}"
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._execute(f'CREATE DATABASE "{name}"')
            _prepare(self._url(name), seeded, self.now)
            self._templates[seeded] = name
        return self._templates[seeded]

    def create(self, seeded: bool = True) -> str:
        name = f"{self.prefix}_t{next(_counter)}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template(seeded)}"')
        return self._url(name)

    def drop(self, url: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def _connect(self, name: str) -> psycopg.Connection:
        return psycopg.connect(
            self.base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
        )

    def checkout(self, seeded: bool = True) -> str:
        """The session's working database for this kind, in its template's state."""
        if seeded not in self._working:
            template = self._template(seeded)
            with closing(self._connect(template)) as connection:
                snapshot = Snapshot(connection)
            url = self.create(seeded)
            connection = self._connect(make_url(url).database)
            snapshot.install(connection)
            self._working[seeded] = (url, connection, snapshot)
        url, connection, snapshot = self._working[seeded]
        if seeded in self._dirty:
            snapshot.restore(connection)
        self._dirty.add(seeded)
        return url

    def checkin(self, url: str) -> None:
        pass  # reset when next checked out: the state is clean whatever the test left behind

    def close(self) -> None:
        for url, connection, _snapshot in self._working.values():
            connection.close()
            self.drop(url)
        for name in self._templates.values():
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()
