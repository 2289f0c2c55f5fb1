"""Bulk answers over every list: the snapshot (CSV, JSON Lines) and the changes between two dates
a year apart. Timed in process through the Flask test client (no HTTP server: these are one
request each, not a load), with the peak Python memory of producing each answer (tracemalloc)
and the number of SQL statements it ran.

The snapshot's bar: a full snapshot of every list in under a second, memory flat in the rows.
"""

import statistics
import time
import tracemalloc

REPS = 5
SNAPSHOT_TARGET_S = 1.0
QUERIES = {
    "snapshot csv": "/v1/snapshot?format=csv",
    "snapshot jsonl": "/v1/snapshot?format=jsonl",
    # A different `from` each time: answers are cached per data version, this measures building one
    # (its first page: every entry is answered for both dates, the page's items are documented).
    "changes (a year, all lists)": "/v1/changes?from=2025-12-{rep:02d}&to=2026-11-30",
}


def _timed(client, path):
    started = time.perf_counter()
    response = client.get(path)
    body = response.get_data()
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {body[:300]!r}")
    return elapsed, len(body)


def _counter(statements: list[int]):
    def count(*_args):
        statements.append(1)

    return count


def measure(database_url: str) -> list[str]:
    from sqlalchemy import event

    from service import close_app, create_app, db

    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    lines = []
    try:
        client = app.test_client()
        with app.app_context():
            engine = db.database().engine
        for name, path in QUERIES.items():
            _timed(client, path.format(rep=1))  # warm: imports, country registry
            times = []
            for rep in range(REPS):
                elapsed, size = _timed(client, path.format(rep=rep + 2))
                times.append(elapsed)
            statements: list[int] = []
            listener = _counter(statements)
            event.listen(engine, "before_cursor_execute", listener)
            tracemalloc.start()
            client.get(path.format(rep=REPS + 2)).get_data()
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            event.remove(engine, "before_cursor_execute", listener)
            median = statistics.median(times)
            verdict = ""
            if name.startswith("snapshot"):
                met = "met" if median < SNAPSHOT_TARGET_S else "NOT met"
                verdict = f"  (target < {SNAPSHOT_TARGET_S:.1f}s: {met})"
            lines.append(
                f"{name:<28} median {median * 1000:7.1f} ms over {REPS}, {size:>8} bytes, "
                f"peak Python memory {peak / 1e6:5.1f} MB, {len(statements)} SQL statements{verdict}"
            )
    finally:
        close_app(app)
    return lines


def bench_bulk(ctx, prepare_database, result_class):
    workdir = ctx.workdir / "bulk"
    workdir.mkdir()
    database_url = prepare_database(workdir)
    return result_class(
        name="bulk",
        title="GET /v1/snapshot and GET /v1/changes over every list (in process, one request at a time)",
        stats=[],
        lines=measure(database_url),
    )
