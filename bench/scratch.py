"""Scratch databases for benchmarks: a fresh SQLite file in the run's temp dir, or a PostgreSQL
database created for the run and dropped after it, never var/ or anyone's real database.

PostgreSQL is measured when BENCH_POSTGRES_URL names a server to create scratch databases on
(e.g. postgresql://postgres@127.0.0.1:5432/postgres); BENCH_BACKENDS=postgresql (or sqlite)
measures only that one. Scratch databases' names start with
BENCH_POSTGRES_PREFIX (default `exportctl_bench`) and end with this process's id.
"""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness import VENV_BIN, BenchError, clean_env

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "").strip()
PREFIX = os.environ.get("BENCH_POSTGRES_PREFIX", "exportctl_bench").strip()


def exportctl(*args: str, database_url: str, env: dict[str, str] | None = None) -> str:
    """Run the venv's `exportctl` (the real CLI, as an operator would) against `database_url`."""
    command = [str(VENV_BIN / "exportctl"), *args]
    result = subprocess.run(
        command,
        env=clean_env({"DATABASE_URL": database_url, **(env or {})}),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def backends() -> list[str]:
    """The databases to measure on: SQLite, and PostgreSQL when a server is configured
    (BENCH_BACKENDS=postgresql, or sqlite, for one of them)."""
    found = ["sqlite", "postgresql"] if ADMIN_URL else ["sqlite"]
    wanted = [name.strip() for name in os.environ.get("BENCH_BACKENDS", "").split(",") if name.strip()]
    return [name for name in found if name in wanted] if wanted else found


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def seeded_database(backend: str, workdir: Path, name: str) -> Iterator[str]:
    """A database at head with the seed data; its SQLAlchemy URL, dropped afterwards (PostgreSQL)."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'{name}.sqlite3'}"
        exportctl("db", "upgrade", database_url=url)
        exportctl("seed", database_url=url)
        yield url
        return
    import psycopg

    database = f"{PREFIX}_{name}_{os.getpid()}"
    admin = _psycopg_url(ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
        connection.execute(f'CREATE DATABASE "{database}"')
    base = admin.rsplit("/", 1)[0]
    url = f"postgresql+psycopg://{base.removeprefix('postgresql://')}/{database}"
    try:
        exportctl("db", "upgrade", database_url=url)
        exportctl("seed", database_url=url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def connect(url: str):
    """A DBAPI connection (sqlite3 or psycopg) to a scratch database, for bulk loading."""
    if url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(url.removeprefix("sqlite:///"))
    import psycopg

    return psycopg.connect(_psycopg_url(url))
