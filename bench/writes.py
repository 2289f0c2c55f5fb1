"""Writes: POST /v1/lists/{id}/entries/{ref}/changes through gunicorn, on SQLite and PostgreSQL.

Each database gets a fresh, seeded scratch database (SQLite in the bench's temp dir; PostgreSQL
when BENCH_POSTGRES_URL names a server: a database created for the run and dropped after it,
never var/, see scratch.py), plus generated history: an entry with DEEP_CHANGES changes and
one with 2, then ANALYZE.
Writers are threads in this process, each with its own keep-alive connection, posting
with an editor key whose write budget is high (EXPORTCTL_WRITE_RATE_LIMIT), so each
write runs with every guarantee of a real one: authentication, the rate limit, the
entry's version check, the outbox event in the same transaction, the data-version bump.

Workloads, each for a fixed time:
- 1 writer, distinct entries; 16 writers, distinct entries; 16 writers, one entry
  (changes/s against the 100/s goal);
- 1 writer on the deep entry vs. 1 writer on the 2-change entry (the deep one may cost
  at most 1.5x: ratio of their changes/s at least 0.67).

Every change is dated today (no date arithmetic, none refused): an entry with one writer
flips between listed and pending_removal, so no run of one status grows; the entry 16
writers share restates pending_removal, legal whichever concurrent change came first.

    .venv/bin/python bench/run.py --only writes
    BENCH_WRITES_SECONDS=10 BENCH_BACKENDS=sqlite .venv/bin/python bench/run.py --only writes
"""

import contextlib
import http.client
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import scratch
from harness import LOOPBACK, VENV_BIN, BenchError, ForeignCpu, Server, clean_env, gunicorn_server

GOAL_PER_SECOND = 100.0
DEEP_COST_LIMIT = 1.5  # a write on the deep entry may cost at most this much of one on a short one
DEEP_CHANGES = int(os.environ.get("BENCH_WRITES_DEEP", "10000"))
SECONDS = float(os.environ.get("BENCH_WRITES_SECONDS", "8"))
WARMUP_SECONDS = 2.0
WRITERS = int(os.environ.get("BENCH_WRITES_WRITERS", "16"))
LIST = "us-ear-d1"
SERVICE_ENV = {"EXPORTCTL_WRITE_RATE_LIMIT": "10000000 per minute"}
SOURCE = {"title": "bench", "publisher": "bench", "url": "https://example.org/bench"}


# ---------------------------------------------------------------------------- data


def _cli(*args: str, database_url: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "exportctl"), *args],
        env=clean_env({"DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"exportctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


@dataclass
class Data:
    database_url: str
    key: str
    distinct: list[str]  # countries with a listed entry each on LIST, one writer's share per slice
    one: str  # the entry 16 writers share
    deep: str  # DEEP_CHANGES changes
    short: str  # 2 changes
    statuses: dict[str, str]  # where each single-writer entry stands (see `writer`)


def generate(database_url: str) -> Data:
    """A seeded database gets: 200 listed entries, a deep and a short entry, then ANALYZE."""
    from sqlalchemy import create_engine, insert, select, text

    from service.domain.countries import registry
    from service.models import Entry, StatusChange, Treatment

    engine = create_engine(database_url)
    created = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        taken = set(connection.scalars(select(Entry.country_code).where(Entry.list_id == LIST)))
        taken |= set(connection.scalars(select(Treatment.country_code).where(Treatment.list_id == LIST)))
        free = [c.alpha_2 for c in registry() if c.alpha_2 not in taken]
        if len(free) < 203:
            raise BenchError(f"only {len(free)} countries are free on {LIST}")
        distinct, (one, deep, short) = free[:200], free[200:203]
        for code, count in [*((c, 1) for c in [*distinct, one]), (deep, DEEP_CHANGES), (short, 2)]:
            entry_id = connection.scalar(
                insert(Entry)
                .values(list_id=LIST, country_code=code, version=count, created_at=created)
                .returning(Entry.id)
            )
            first = datetime.now(UTC).date() - timedelta(days=count + 10)
            # Alternating listed/removed, one a day, ending listed.
            connection.execute(
                insert(StatusChange),
                [
                    {
                        "entry_id": entry_id,
                        "from_status": None if i == 0 else ("removed" if (count - i) % 2 else "listed"),
                        "status": "listed" if (count - 1 - i) % 2 == 0 else "removed",
                        "effective_on": first + timedelta(days=i),
                        "recorded_at": created,
                        "sources": [SOURCE],
                        "actor": "bench",
                    }
                    for i in range(count)
                ],
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()
    key = scratch.exportctl(
        "keys", "create", "--name", "bench-writer", "--role", "editor", database_url=database_url
    ).strip()
    statuses = dict.fromkeys([*distinct, deep, short], "listed")
    return Data(database_url, key, distinct, one, deep, short, statuses)


# ---------------------------------------------------------------------------- load


def _group_cpu(group: int) -> float:
    """CPU seconds (user + system) of every process in process group `group` (the server)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:
                total += int(fields[11]) + int(fields[12])
    return total / ForeignCpu.TICKS


@dataclass
class Run:
    name: str
    changes: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float = 0.0  # CPU seconds the API server spent (this machine is shared: see below)
    other_cpu: float | None = None  # share of a CPU that went to other processes meanwhile

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu / self.changes * 1000 if self.changes else 0.0

    @property
    def per_second(self) -> float:
        return self.changes / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else 0.0


# The status each entry with one writer is at (all start listed); the next change flips it.
NEXT = {"listed": "pending_removal", "pending_removal": "listed"}


def writer(
    port: int,
    key: str,
    codes: list[str],
    stop: float,
    latencies: list[float],
    errors: list[str],
    statuses: dict[str, str] | None,
    interval: float = 0.0,
):
    """POST changes to `codes` in turn until `stop`, one every `interval` seconds at most (0: as
    fast as answers come). With `statuses` (entries this writer alone writes), each change flips
    its entry between listed and pending_removal, so no run of one status grows; without (entries
    shared by writers), each restates pending_removal, which is legal whichever concurrent change
    came first."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    today = datetime.now(UTC).date().isoformat()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    index = 0
    next_at = time.monotonic()
    try:
        while time.monotonic() < stop:
            code = codes[index % len(codes)]
            index += 1
            status = NEXT[statuses[code]] if statuses is not None else "pending_removal"
            body = json.dumps({"status": status, "effective_on": today, "sources": [SOURCE]})
            if interval:  # paced: the next write is due `interval` after this one was
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + interval, time.monotonic())
            started = time.perf_counter()
            connection.request("POST", f"/v1/lists/{LIST}/entries/{code}/changes", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 201:
                errors.append(f"{response.status} {payload[:200]!r}")
                continue
            latencies.append(time.perf_counter() - started)
            if statuses is not None:
                statuses[code] = status
    finally:
        connection.close()


def _load(
    server: Server,
    data: Data,
    name: str,
    shares: list[list[str]],
    seconds: float = SECONDS,
    shared: bool = False,
) -> Run:
    """One writer thread per share of entries, for `seconds` (`shared`: they write one entry)."""
    key = data.key
    statuses = None if shared else data.statuses
    port = server.port
    latencies: list[list[float]] = [[] for _ in shares]
    errors: list[str] = []
    foreign = ForeignCpu([server.process.pid])
    foreign.start()
    cpu = _group_cpu(server.process.pid)
    started = time.monotonic()
    stop = started + seconds
    threads = [
        threading.Thread(
            target=writer, args=(port, key, share, stop, latencies[i], errors, statuses), daemon=True
        )
        for i, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = _group_cpu(server.process.pid) - cpu
    other = foreign.stop()
    every = [value for each in latencies for value in each]
    if errors:
        print(f"  {name}: {len(errors)} errors, first: {errors[0]}")
    return Run(name, len(every), elapsed, every, len(errors), cpu, other)


def _workloads(server: Server, data: Data) -> list[Run]:
    per_writer = len(data.distinct) // WRITERS
    # Warm the server up (imports, connection pools, statement caches) on entries not measured.
    _load(server, data, "warm-up", [[data.short, data.deep]], seconds=WARMUP_SECONDS)
    runs = [
        _load(server, data, "1 writer, distinct entries", [data.distinct]),
        _load(
            server,
            data,
            f"{WRITERS} writers, distinct entries",
            [data.distinct[i * per_writer : (i + 1) * per_writer] for i in range(WRITERS)],
        ),
        _load(server, data, f"{WRITERS} writers, one entry", [[data.one]] * WRITERS, shared=True),
        _load(server, data, "1 writer, 2-change entry", [[data.short]]),
        _load(server, data, f"1 writer, {DEEP_CHANGES:,}-change entry", [[data.deep]]),
    ]
    for run in runs:
        print(
            f"  {run.name}: {run.per_second:.0f} changes/s, p50 {run.percentile(0.5) * 1000:.1f} ms, "
            f"p99 {run.percentile(0.99) * 1000:.1f} ms, server CPU {run.cpu_ms:.1f} ms/change"
        )
    return runs


def _lines(database: str, runs: list[Run]) -> list[str]:
    lines = [
        f"{database}:",
        f"  {'workload':<34} {'changes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'/goal':>6} "
        f"{'CPU ms':>7} {'others':>7}",
    ]
    for run in runs:
        other = f"{run.other_cpu:.2f}" if run.other_cpu is not None else "?"
        lines.append(
            f"  {run.name:<34} {run.per_second:>9.0f} {run.percentile(0.5) * 1000:>8.1f} "
            f"{run.percentile(0.99) * 1000:>8.1f} {run.per_second / GOAL_PER_SECOND:>6.2f} "
            f"{run.cpu_ms:>7.1f} {other:>7}" + (f"  ({run.errors} errors)" if run.errors else "")
        )
    short, deep = runs[-2], runs[-1]
    cost = short.per_second / deep.per_second if deep.per_second else float("inf")
    verdict = "met" if cost <= DEEP_COST_LIMIT else "NOT met"
    lines.append(f"  deep/short cost per write: {cost:.2f}x (target <= {DEEP_COST_LIMIT}: {verdict})")
    below = [run.name for run in runs[:3] if run.per_second < GOAL_PER_SECOND]
    verdict = "met" if not below else "NOT met by " + ", ".join(below)
    lines.append(f"  {GOAL_PER_SECOND:.0f} changes/s goal: {verdict}")
    return lines


def bench_writes(ctx, prepare_database: Callable[[Path], str], result_type):
    """Changes/s and latency of POSTed changes, on SQLite and PostgreSQL, beside the 100/s goal."""
    lines: list[str] = []
    errors = 0
    for database in scratch.backends():
        workdir: Path = ctx.workdir / f"writes-{database}"
        workdir.mkdir()
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(scratch.seeded_database(database, workdir, "writes"))
            data = generate(url)
            print(f"  {database}: seeded, {DEEP_CHANGES:,}-change entry {LIST}/{data.deep}, analysed")
            api = stack.enter_context(
                gunicorn_server(
                    f"writes-{database}",
                    "service.wsgi:app",
                    ctx.gunicorn,
                    workdir,
                    env={"DATABASE_URL": url, **SERVICE_ENV},
                    ready_path="/healthz",
                )
            )
            runs = _workloads(api, data)
            errors += sum(run.errors for run in runs)
            lines += _lines(database, runs)
    lines.append(
        "CPU ms: the API server's CPU time per change (gunicorn, all workers; not the database's);"
        " others: CPUs' worth used by other processes meanwhile (database, this client, the rest of"
        " the machine), which shared machines make noisy"
    )
    if errors:
        lines.append(f"{errors} writes failed (see above)")
    return result_type(
        name="writes",
        title=f"POST changes: changes/s and p50/p99 (goal {GOAL_PER_SECOND:.0f}/s; deep entry <= "
        f"{DEEP_COST_LIMIT}x a short one)",
        stats=[],
        lines=lines,
    )
