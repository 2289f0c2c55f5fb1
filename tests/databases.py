"""Per-test databases copied from a migrated (and optionally seeded) template.

SQLite: a file copy. PostgreSQL (TEST_DATABASE_URL): CREATE DATABASE ... TEMPLATE.
Each test gets its own database, so no test sees another's writes.
"""

import itertools
import os
import shutil
from datetime import datetime
from pathlib import Path
from unittest.mock import patch

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service import clock, migrate, seeding
from service.db import make_engine, normalise_url
from service.models import Base  # noqa: F401 - models registered before migrations run

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

    def close(self) -> None:
        for name in self._templates.values():
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()
