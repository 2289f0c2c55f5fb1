"""Soak: the memory of the web workers and of the webhook worker over one long run mixing the workloads.

The issue's bar: the RSS of a web worker and of the webhook worker stays flat over a 10-minute
run (BENCH_SOAK_SECONDS, default 600) while every kind of request comes in at once. A leak, or a
cache bounded by the number of its entries instead of their bytes, shows as growth that does
not stop once the service has warmed up.

One gunicorn API (the bench's usual settings) and one `exportctl worker` process run on a
scratch seeded database (SQLite, and PostgreSQL when BENCH_POSTGRES_URL is set) with the other
benchmarks' generated data: 200 listed entries, one with 10,000 changes (writes.py),
BENCH_SOAK_EVENTS events (feed.py) and BENCH_SOAK_SUBSCRIPTIONS webhook subscriptions to a
keep-alive receiver in this process (fanout.py). Then, for the whole run:

- BENCH_SOAK_READERS threads each ask, one request at a time, for one of MIX at random: a cold
  lookup of any country at any `as_of` (and `known_at`), the cached VN lookup, an event page and
  an Atom page at random cursors, a page of the deep entry's history, the CSV snapshot, the
  changes since a random date;
- one writer records BENCH_SOAK_WRITES_PER_SECOND changes a second, so the worker delivers
  all along (and every write retires the cached documents of the data version before).

Every BENCH_SOAK_SAMPLE_SECONDS (30) the RSS of each gunicorn worker and of the webhook worker is
sampled. Flat: the largest sample of the last third is within FLAT_SHARE (or FLAT_MB, whichever
is larger) of the largest one taken between the warm-up (WARMUP_SECONDS) and the last third.

    BENCH_SOAK_SECONDS=180 BENCH_BACKENDS=sqlite .venv/bin/python bench/run.py --only soak
"""

import contextlib
import http.client
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import fanout
import feed
import lookups
import scratch
import writes
from harness import LOOPBACK, BenchError, children, format_table, gunicorn_server, http_get, rss_mb, tail
from sqlalchemy import func, select

from service.config import SETTINGS, parse_size
from service.db import make_engine
from service.models import Delivery

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "600"))
SAMPLE_SECONDS = float(os.environ.get("BENCH_SOAK_SAMPLE_SECONDS", "30"))
WARMUP_SECONDS = 60.0
EVENTS = int(os.environ.get("BENCH_SOAK_EVENTS", "100000"))
SUBSCRIPTIONS = int(os.environ.get("BENCH_SOAK_SUBSCRIPTIONS", "50"))
READERS = int(os.environ.get("BENCH_SOAK_READERS", "8"))
WRITES_PER_SECOND = float(os.environ.get("BENCH_SOAK_WRITES_PER_SECOND", "3"))
FLAT_SHARE = 0.10
FLAT_MB = 8.0
RECONNECT_EVERY = 10
HISTORY_PAGES = 50  # pages of the deep entry's history whose cursors readers pick from
# How often each kind of read comes up, relative to the others.
MIX = {
    "asof": 3.0,
    "cached VN": 3.0,
    "events": 2.0,
    "atom": 1.0,
    "history": 2.0,
    "snapshot csv": 0.5,
    "changes": 1.0,
}
WEBHOOK_WORKER = "webhook worker"


def cache_bound() -> str:
    """The document cache's bound the servers run with (they inherit this environment)."""
    variable, default, _parse = SETTINGS["CACHE_MAX_BYTES"]
    raw = os.environ.get(variable) or default
    source = "set" if variable in os.environ else "the default"
    return f"{variable}={raw} ({source}: {parse_size(raw) / 1e6:.0f} MB per process)"


def history_paths(server, code: str) -> list[str]:
    """The deep entry's first HISTORY_PAGES history pages, by the cursors the API hands out."""
    base = f"/v1/lists/{writes.LIST}/entries/{code}?limit={feed.PAGE}"
    paths = [base]
    while len(paths) < HISTORY_PAGES:
        status, _headers, body = http_get(server.url(paths[-1]), timeout=60)
        if status != 200:
            raise BenchError(f"GET {paths[-1]} answered {status}:\n{body[:300]!r}")
        cursor = json.loads(body).get("next_cursor")
        if not cursor:
            break
        paths.append(f"{base}&cursor={quote(cursor)}")
    return paths


def mix(codes: list[str], last_event: int, history: list[str]) -> dict[str, Callable[[random.Random], str]]:
    """Each kind of read of MIX: a path, drawn at random."""
    days = (datetime.now(UTC).date() - lookups.FIRST_DAY).days

    def cursor(rng: random.Random) -> int:
        return rng.randint(0, max(last_event - feed.PAGE, 0))

    return {
        "asof": lambda rng: lookups.random_path(codes, rng),
        "cached VN": lambda _rng: "/v1/countries/VN",
        "events": lambda rng: f"{feed.COLD_PATH}{cursor(rng)}",
        "atom": lambda rng: f"{feed.ATOM_PATH}{cursor(rng)}",
        "history": lambda rng: rng.choice(history),
        "snapshot csv": lambda _rng: "/v1/snapshot?format=csv",
        "changes": lambda rng: f"/v1/changes?from={lookups.FIRST_DAY + timedelta(days=rng.randrange(days))}",
    }


class Tally:
    """Requests done, their latencies, and failures (non-2xx/3xx answers, socket errors) per kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.first_errors: dict[str, str] = {}

    @property
    def done(self) -> int:
        return sum(len(each) for each in self.seconds.values())

    def note(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.seconds[kind].append(seconds)
            if error is not None:
                self.errors[kind] += 1
                self.first_errors.setdefault(kind, error)


def read(port: int, paths: dict[str, Callable[[random.Random], str]], stop: float, tally: Tally, seed: int):
    """GET a kind of MIX at random, one after the other on a keep-alive connection, until `stop`.

    The connection is renewed every RECONNECT_EVERY requests: gunicorn's workers each keep the
    connections they accepted, so without it one worker could serve the whole run and the
    other's flat memory would mean nothing."""
    rng = random.Random(seed)
    kinds, weights = list(paths), [MIX[kind] for kind in paths]
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    done = 0
    try:
        while time.monotonic() < stop:
            done += 1
            if done % RECONNECT_EVERY == 0:
                connection.close()  # the next request connects again, perhaps to the other worker
            kind = rng.choices(kinds, weights)[0]
            path = paths[kind](rng)
            error = None
            started = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if not 200 <= response.status < 400:
                    error = f"{response.status} on {path}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                connection.close()  # the next request connects again
                error = f"{exc!r} on {path}"
            tally.note(kind, time.perf_counter() - started, error)
    finally:
        connection.close()


def write(port: int, data: writes.Data, stop: float, latencies: list[float], errors: list[str]) -> None:
    """Changes at WRITES_PER_SECOND on the listed entries and the deep one, until `stop`."""
    try:
        writes.writer(
            port,
            data.key,
            [*data.distinct, data.deep],
            stop,
            latencies,
            errors,
            data.statuses,
            interval=1 / WRITES_PER_SECOND,
        )
    except (OSError, http.client.HTTPException) as exc:
        errors.append(f"the writer stopped: {exc!r}")


def sample(api, worker, worker_log: Path) -> dict[str, float]:
    """RSS in MB of each gunicorn worker (by pid) and of the webhook worker, now."""
    api.check_alive()
    if worker.poll() is not None:
        raise BenchError(f"the webhook worker exited ({worker.returncode}):\n{tail(worker_log)}")
    found = {f"web {pid}": rss_mb(pid) for pid in children(api.process.pid)}
    found[WEBHOOK_WORKER] = rss_mb(worker.pid)
    return {name: size for name, size in found.items() if size is not None}


def verdict(name: str, series: list[tuple[float, float]]) -> str:
    settled = [size for at, size in series if WARMUP_SECONDS <= at < SECONDS * 2 / 3]
    last = [size for at, size in series if at >= SECONDS * 2 / 3]
    if not settled or not last:
        return f"{name}: too few samples after the warm-up to judge (a worker replaced, or a short run)"
    reference, peak = max(settled), max(last)
    allowed = max(reference * FLAT_SHARE, FLAT_MB)
    return (
        f"{name}: {'flat' if peak <= reference + allowed else 'NOT flat'}: last third's max {peak:.0f} MB "
        f"vs. {reference:.0f} MB after the warm-up ({peak - reference:+.0f} MB; allowed +{allowed:.0f} MB)"
    )


def deliveries(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            counts = connection.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
    finally:
        engine.dispose()
    return ", ".join(f"{count} {state}" for state, count in sorted(counts)) or "none"


def measure(ctx, backend: str) -> list[str]:
    workdir: Path = ctx.workdir / f"soak-{backend}"
    workdir.mkdir()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch.seeded_database(backend, workdir, "soak"))
        data = writes.generate(url)  # the writes benchmark's entries and editor key
        last_event = feed.load_events(url, EVENTS)
        codes = lookups.seeded_countries(url)
        env = {"DATABASE_URL": url, **fanout.SERVICE_ENV, **writes.SERVICE_ENV}
        arrivals = fanout.Arrivals()
        sink = fanout.receiver(arrivals)
        stack.callback(sink.shutdown)
        api = stack.enter_context(
            gunicorn_server(
                f"soak-{backend}", "service.wsgi:app", ctx.gunicorn, workdir, env=env, ready_path="/healthz"
            )
        )
        worker = fanout.start_worker(stack, workdir, env)
        fanout.create_subscriptions(api.port, data.key, sink.server_port, 0, SUBSCRIPTIONS)
        history = history_paths(api, data.deep)
        paths = mix(codes, last_event, history)
        print(
            f"  {backend}: {len(codes)} countries, {writes.DEEP_CHANGES:,}-change entry {writes.LIST}/"
            f"{data.deep} ({len(history)} history pages), {last_event:,} events, {SUBSCRIPTIONS} "
            f"subscriptions; {READERS} readers and {WRITES_PER_SECOND:g} writes/s for {SECONDS:.0f}s",
            flush=True,
        )
        tally, latencies, write_errors = Tally(), [], []
        started = time.monotonic()
        stop = started + SECONDS
        threads = [
            threading.Thread(target=read, args=(api.port, paths, stop, tally, seed), daemon=True)
            for seed in range(READERS)
        ]
        threads.append(
            threading.Thread(target=write, args=(api.port, data, stop, latencies, write_errors), daemon=True)
        )
        for thread in threads:
            thread.start()
        samples: list[tuple[float, dict[str, float]]] = []
        offsets = [i * SAMPLE_SECONDS for i in range(int(SECONDS // SAMPLE_SECONDS) + 1)]
        offsets += [SECONDS] if offsets[-1] < SECONDS else []
        for at in offsets:
            time.sleep(max(0.0, started + at - time.monotonic()))
            samples.append((at, sample(api, worker, workdir / "worker.log")))
            sizes = ", ".join(f"{name} {size:.0f} MB" for name, size in samples[-1][1].items())
            print(
                f"  {backend} {at:4.0f}s: {sizes}; {tally.done:,} reads, "
                f"{len(latencies):,} writes, {len(arrivals):,} deliveries",
                flush=True,
            )
        for thread in threads:
            thread.join()
        time.sleep(2)  # the last writes' deliveries
        states = deliveries(url)
        if tally.errors or write_errors:
            print(f"  {backend}: errors; the API log ends:\n{tail(api.log_path)}")
    return report(backend, samples, tally, latencies, write_errors, len(arrivals), states)


def report(backend, samples, tally, latencies, write_errors, delivered, states) -> list[str]:
    names = list(dict.fromkeys(name for _at, sizes in samples for name in sizes))
    rows = [
        [f"{at:.0f}s", *(f"{sizes[name]:.0f}" if name in sizes else "-" for name in names)]
        for at, sizes in samples
    ]
    lines = [f"{backend}: RSS in MB, sampled every {SAMPLE_SECONDS:.0f}s", format_table(["at", *names], rows)]
    for name in names:
        lines.append("  " + verdict(name, [(at, sizes[name]) for at, sizes in samples if name in sizes]))
    web_pids = [name for name in names if name != WEBHOOK_WORKER]
    if len(web_pids) > len([name for name in samples[0][1] if name != WEBHOOK_WORKER]):
        lines.append("  a web worker was replaced during the run (timeout or crash): see the server log")
    rows = [
        [
            kind,
            f"{len(times):,}",
            str(errors),
            f"{fanout.percentile(times, 0.5) * 1000:.0f}" if times else "-",
            f"{fanout.percentile(times, 0.99) * 1000:.0f}" if times else "-",
        ]
        for kind, times, errors in [
            *((kind, tally.seconds[kind], tally.errors[kind]) for kind in MIX),
            ("writes", latencies, len(write_errors)),
        ]
    ]
    lines.append(f"{backend}: requests done in {SECONDS:.0f}s ({tally.done:,} reads)")
    lines.append(format_table(["kind", "done", "errors", "p50 ms", "p99 ms"], rows))
    lines.append(f"  webhook deliveries received {delivered:,} (database: {states})")
    errors = sum(tally.errors.values()) + len(write_errors)
    lines.append(f"  errors (non-2xx/3xx or socket, reads and writes): {errors}")
    for kind, count in tally.errors.items():
        lines.append(f"    {kind}: {count}, first: {tally.first_errors[kind]}")
    if write_errors:
        lines.append(f"    writes: {len(write_errors)}, first: {write_errors[0]}")
    return lines


def bench_soak(ctx, result_type):
    """RSS of the web workers and of the webhook worker through one long mixed run, per database."""
    lines = [
        f"document cache bound: {cache_bound()}; flat: the last third's max RSS within "
        f"{FLAT_SHARE:.0%} or {FLAT_MB:.0f} MB (the larger) of the max between the "
        f"{WARMUP_SECONDS:.0f}s warm-up and the last third"
    ]
    for backend in scratch.backends():
        lines += measure(ctx, backend)
    return result_type(
        name="soak",
        title=f"RSS over {SECONDS:.0f}s of mixed reads, writes and webhook deliveries",
        stats=[],
        lines=lines,
    )
