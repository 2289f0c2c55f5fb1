"""The event feed at any cursor, cold: GET /v1/events and /v1/events.atom over a million events.

A scratch database (SQLite, and PostgreSQL when BENCH_POSTGRES_URL is set) gets the seed data,
then BENCH_FEED_EVENTS (default 1,000,000) events copied from the seeds' own, bulk-inserted and
analysed. One server answers three loads, interleaved:

- `first`: the first page (`?limit=100`), answered from the document cache: the reference;
- `cold`: a page of 100 after a random cursor, a different one per request, so never cached;
- `atom`: the Atom feed after a random cursor (never cached either).

The issue's bars: a cold page at least 0.5 of the cached first page, Atom at least 0.5 of a
cold JSON page. RSS of the server's workers is printed before and after the loads.
"""

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import scratch
from harness import (
    REPORT_LUA,
    BenchError,
    Target,
    gunicorn_server,
    http_get,
    measure_interleaved,
    tail,
    workers_rss,
)

EVENTS = int(os.environ.get("BENCH_FEED_EVENTS", "1000000"))
PAGE = 100
COLD_TARGET_RATIO = 0.50
ATOM_TARGET_RATIO = 0.50
FIRST_PATH = f"/v1/events?limit={PAGE}"
COLD_PATH = f"/v1/events?limit={PAGE}&after="
ATOM_PATH = f"/v1/events.atom?limit={PAGE}&after="
CHUNK = 20_000


def load_events(url: str, count: int) -> int:
    """Append `count` public events (copies of the seeds' events) and ANALYZE; the last sequence."""
    connection = scratch.connect(url)
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT type, country_code, list_id, CAST(data AS TEXT) FROM events WHERE public ORDER BY id"
        )
        templates = [tuple(row) for row in cursor.fetchall()]
        if not templates:
            raise BenchError("the seeded database has no public event to copy")
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM events")
        first = cursor.fetchone()[0] + 1
        start = datetime(2000, 1, 1, tzinfo=UTC)
        sqlite = url.startswith("sqlite")

        def rows(low: int, high: int):
            for sequence in range(low, high):
                type_, country, list_id, data = templates[sequence % len(templates)]
                moment = start + timedelta(seconds=sequence * 60)
                if sqlite:  # SQLAlchemy's SQLite storage format for a naive UTC datetime
                    occurred: object = moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
                else:
                    occurred = moment
                yield (sequence, type_, occurred, country, list_id, data, True)

        last = first + count - 1
        columns = "id, type, occurred_at, country_code, list_id, data, public"
        insert = "INSERT INTO events (id, type, occurred_at, country_code, list_id, data, public) "
        if sqlite:
            for low in range(first, last + 1, CHUNK):
                cursor.executemany(
                    insert + "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows(low, min(low + CHUNK, last + 1)),
                )
            cursor.execute("UPDATE counters SET value = ? WHERE name = 'events'", (last,))
            connection.commit()
            cursor.execute("ANALYZE")
        else:
            with cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy:
                for row in rows(first, last + 1):
                    copy.write_row(row)
            cursor.execute("UPDATE counters SET value = %s WHERE name = 'events'", (last,))
            connection.commit()
            connection.autocommit = True
            cursor.execute("VACUUM ANALYZE")
        connection.commit()
        return last
    finally:
        connection.close()


def random_cursor_script(workdir: Path, name: str, path: str, last: int) -> Path:
    """A wrk script asking for `path` + a random cursor per request, reporting like the others."""
    script = workdir / f"{name}.lua"
    script.write_text(
        f"math.randomseed({random.randrange(1 << 30)})\n"
        "request = function()\n"
        f'  return wrk.format(nil, "{path}" .. math.random(0, {max(last - PAGE, 0)}))\n'
        "end\n" + REPORT_LUA.read_text()
    )
    return script


def measure(ctx, backend: str, ratio) -> tuple[list, list, list[str]]:
    workdir: Path = ctx.workdir / f"feed-{backend}"
    workdir.mkdir()
    lines = []
    with scratch.seeded_database(backend, workdir, "feed") as url:
        print(f"  {backend}: loading {EVENTS} events ...", flush=True)
        started = datetime.now(UTC)
        last = load_events(url, EVENTS)
        print(f"  {backend}: {EVENTS} events loaded and analysed in {(datetime.now(UTC) - started).seconds}s")
        with gunicorn_server(
            f"feed-{backend}",
            "service.wsgi:app",
            ctx.gunicorn,
            workdir,
            env={"DATABASE_URL": url},
            ready_path="/healthz",
        ) as server:
            for path in (FIRST_PATH, f"{COLD_PATH}{last // 2}", f"{ATOM_PATH}{last // 2}"):
                status, headers, body = http_get(server.url(path), timeout=30)
                if status != 200:
                    raise BenchError(f"GET {path} answered {status}:\n{body[:300]!r}")
                print(f"  {path}: {len(body)} bytes of {headers.get('Content-Type')}")
            rss_before = workers_rss(server)
            targets = [
                Target("first", server.url(FIRST_PATH), server),
                Target(
                    "cold",
                    server.url(FIRST_PATH),
                    server,
                    script=random_cursor_script(workdir, "cold", COLD_PATH, last),
                ),
                Target(
                    "atom",
                    server.url(FIRST_PATH),
                    server,
                    script=random_cursor_script(workdir, "atom", ATOM_PATH, last),
                ),
            ]
            stats = measure_interleaved(targets, ctx.load)
            rss_after = workers_rss(server)
            for entry in stats:
                entry.target = Target(f"{backend[:2]} {entry.target.name}", entry.target.url, server)
                if entry.errors:
                    print(f"  {entry.target.name} had {entry.errors} errors; the server log ends:")
                    print(tail(server.log_path))
    first, cold, atom = stats
    ratios = [ratio(cold, first, target=COLD_TARGET_RATIO), ratio(atom, cold, target=ATOM_TARGET_RATIO)]
    lines.append(f"{backend}: {EVENTS} events; web workers' RSS before {rss_before}, after {rss_after}")
    return stats, ratios, lines


def bench_feed(ctx, result_class, ratio):
    stats, ratios, lines = [], [], []
    for backend in scratch.backends():
        these = measure(ctx, backend, ratio)
        stats += these[0]
        ratios += these[1]
        lines += these[2]
    if not scratch.ADMIN_URL:
        lines.append(
            "PostgreSQL not measured: set BENCH_POSTGRES_URL to a server to create scratch databases on"
        )
    return result_class(
        name="feed",
        title=f"GET /v1/events and /v1/events.atom at random cursors (cold) vs. the cached first page "
        f"({EVENTS} events)",
        stats=stats,
        ratios=ratios,
        lines=lines,
    )
