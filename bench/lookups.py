"""Cold lookups: any country at any date, and an entry with a deep history.

- `asof`: GET /v1/countries/{code}?as_of=...(&known_at=...) for a random seeded country at a
  random date between 2000 and 2027 (a share of them also at a random `known_at`), every
  request a distinct URL, so the document cache (keyed by the URL's arguments) cannot
  answer: each one is built from the database. Compared with bare Flask serving a body
  of the same size (the median of a sample of real answers) on the same random paths.
  The service keeps each list's answer once per decision (the change in force, ...) and
  assembles documents from those parts; `asof-<db>-nocache` runs the same load on SQLite
  with no room in its caches (EXPORTCTL_CACHE_MAX_BYTES=4, so nothing is kept), which is
  what a date costs the first time its decisions are met.
- `deep`: the same random-date lookup of a country whose one entry has 10,000 changes,
  against one whose entry has 2: history depth must cost (almost) nothing.

The data is generated in the benchmark's scratch database (never var/), and the
database is analysed after loading, as an operator would after a bulk load. With
--postgres (BENCH_POSTGRES_URL) both also run on PostgreSQL, in a scratch database that
scratch.py creates and drops (as every other workload's).
"""

import contextlib
import random
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import scratch
from harness import (
    BenchError,
    Target,
    gunicorn_server,
    http_get,
    measure_interleaved,
    tail,
    wrk_script,
)
from sqlalchemy import insert, select, text

from service.db import make_engine
from service.domain.countries import registry
from service.models import ControlList, Entry, StatusChange
from service.vocabulary import Status

ASOF_TARGET_RATIO = 0.40
DEEP_TARGET_RATIO = 1 / 1.5  # deep may cost at most 1.5x the short entry
DEEP_CHANGES = 10_000
SHORT_CHANGES = 2
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2027, 12, 31)
KNOWN_AT_SHARE = 0.3  # share of requests that also ask `known_at`
SAMPLE = 40  # real answers fetched to size the bare app's body
COUNTRY_ROUTE = "/v1/countries/<code>"

# A cycle of legal transitions (service/domain/statuses.py ALLOWED_NEXT).
CYCLE = [Status.LISTED, Status.PENDING_REMOVAL, Status.REMOVED, Status.PENDING_ADDITION]
SOURCE = {
    "title": "Generated for the benchmark",
    "publisher": "exportctl bench",
    "url": "https://www.federalregister.gov/documents/bench",
    "published_on": None,
}


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())


def request_lua(codes: list[str]) -> str:
    """A wrk request() that asks for a random country of `codes` at a random date (and known_at)."""
    quoted = ", ".join(f'"{code}"' for code in codes)
    now = int(datetime.now(UTC).timestamp())
    return f"""
local codes = {{{quoted}}}
local first, last = {_epoch(FIRST_DAY)}, {_epoch(LAST_DAY)}
local known_first, known_last = {_epoch(FIRST_DAY)}, {now}
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000) % 1000)
request = function()
  local path = "/v1/countries/" .. codes[math.random(#codes)]
    .. "?as_of=" .. os.date("!%Y-%m-%d", math.random(first, last))
  if math.random() < {KNOWN_AT_SHARE} then
    path = path .. "&known_at=" .. os.date("!%Y-%m-%dT%H:%M:%SZ", math.random(known_first, known_last))
  end
  return wrk.format(nil, path)
end
"""


def random_path(codes: list[str], rng: random.Random) -> str:
    """A path as the Lua script draws them, for sampling real answers."""
    day = FIRST_DAY + timedelta(days=rng.randrange((LAST_DAY - FIRST_DAY).days + 1))
    path = f"/v1/countries/{rng.choice(codes)}?as_of={day.isoformat()}"
    if rng.random() < KNOWN_AT_SHARE:
        start = _epoch(FIRST_DAY)
        moment = datetime.fromtimestamp(rng.randrange(start, int(datetime.now(UTC).timestamp())), UTC)
        path += f"&known_at={moment.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return path


def analyse(database_url: str) -> None:
    """Fresh planner statistics after a bulk load (PostgreSQL here runs without autovacuum)."""
    engine = make_engine(database_url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    finally:
        engine.dispose()


def seeded_countries(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(
                connection.scalars(select(Entry.country_code).distinct().order_by(Entry.country_code))
            )
    finally:
        engine.dispose()


def add_entry(database_url: str, changes: int, *, exclude: set[str]) -> str:
    """A country with no entry yet gets one on the first list, with `changes` legal changes, one a day
    from 2000 on, each recorded a few days after it took effect. Returns the country's code."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            taken = set(connection.scalars(select(Entry.country_code))) | exclude
            code = next(c.alpha_2 for c in registry() if c.alpha_2 not in taken)
            list_id = connection.scalars(select(ControlList.id).order_by(ControlList.id)).first()
            now = datetime.now(UTC)
            entry_id = connection.execute(
                insert(Entry).values(list_id=list_id, country_code=code, version=changes, created_at=now)
            ).inserted_primary_key[0]
            step = max(1, (LAST_DAY - FIRST_DAY).days // changes)
            rows = []
            for i in range(changes):
                day = FIRST_DAY + timedelta(days=i * step)
                status = CYCLE[i % len(CYCLE)]
                rows.append(
                    {
                        "entry_id": entry_id,
                        "from_status": CYCLE[(i - 1) % len(CYCLE)].value if i else None,
                        "status": status.value,
                        "effective_on": day,
                        "expected_effective_on": None,
                        "recorded_at": datetime.combine(day, time(12), UTC) + timedelta(days=i % 5),
                        "note": f"Generated change {i + 1} of {changes}.",
                        "sources": [SOURCE],
                        "actor": "bench",
                        "request_id": None,
                        "confidence": None,
                    }
                )
            connection.execute(insert(StatusChange), rows)
        return code
    finally:
        engine.dispose()


def _fetch_ok(server, path: str) -> bytes:
    status, _headers, body = http_get(server.url(path), timeout=30)
    if status != 200:
        raise BenchError(f"GET {path} answered {status}, not 200:\n{body[:500]!r}")
    return body


def _report_errors(stats) -> None:
    for entry in stats:
        if entry.errors and entry.target.server is not None:
            print(f"  {entry.target.name} had {entry.errors} errors; its server log ends:")
            print(tail(entry.target.server.log_path))


@contextlib.contextmanager
def databases(ctx, name: str, prepare_database) -> Iterator[list[tuple[str, str]]]:
    """(label, URL) of each database to run on: a fresh seeded SQLite one, and, with --postgres
    (BENCH_POSTGRES_URL), a scratch PostgreSQL one (see scratch.py), dropped afterwards."""
    directory = ctx.workdir / name
    directory.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        yield [
            (
                "pg" if backend == "postgresql" else backend,
                stack.enter_context(scratch.seeded_database(backend, directory, name)),
            )
            for backend in scratch.backends()
        ]


def _server(ctx, stack: contextlib.ExitStack, name: str, database_url: str, env: dict | None = None):
    return stack.enter_context(
        gunicorn_server(
            name,
            "service.wsgi:app",
            ctx.gunicorn,
            ctx.workdir,
            env={"DATABASE_URL": database_url, **(env or {})},
            ready_path="/healthz",
        )
    )


def bench_asof(ctx, prepare_database, result_class, ratio):
    with databases(ctx, "asof", prepare_database) as found, contextlib.ExitStack() as stack:
        workdir = ctx.workdir / "asof"
        for _label, url in found:
            analyse(url)
        codes = seeded_countries(found[0][1])
        script = wrk_script(workdir / "asof.lua", request_lua(codes))
        reals = [(label, _server(ctx, stack, f"asof-{label}", url)) for label, url in found]
        label, url = found[0]
        nothing_kept = {"EXPORTCTL_CACHE_MAX_BYTES": "4"}
        reals.append((f"{label}-nocache", _server(ctx, stack, f"asof-{label}-nocache", url, nothing_kept)))
        rng = random.Random(13)
        for _label, real in reals[1:]:  # the first answers the sample below: start every worker up alike
            for _ in range(SAMPLE):
                _fetch_ok(real, random_path(codes, rng))
        bodies = [_fetch_ok(reals[0][1], random_path(codes, rng)) for _ in range(SAMPLE)]
        body = sorted(bodies, key=len)[len(bodies) // 2]
        body_path = workdir / "bare-body"
        body_path.write_bytes(body)
        bare = stack.enter_context(
            gunicorn_server(
                "bare",
                "bare_app:app",
                ctx.gunicorn,
                workdir,
                env={
                    "BENCH_BARE_BODY": str(body_path),
                    "BENCH_BARE_CONTENT_TYPE": "application/json",
                    "BENCH_BARE_PATH": COUNTRY_ROUTE,
                },
                ready_path="/v1/countries/VN",
                pythonpath=Path(__file__).resolve().parent,
            )
        )
        sizes = [len(b) for b in bodies]
        print(
            f"  asof: {len(codes)} seeded countries x dates {FIRST_DAY}..{LAST_DAY} "
            f"({KNOWN_AT_SHARE:.0%} with known_at) on {', '.join(label for label, _ in found)}; answers "
            f"{min(sizes)}-{max(sizes)} bytes (median {statistics.median(sizes):.0f}); "
            f"bare serves {len(body)}"
        )
        targets = [
            Target(f"asof-{label}", real.url("/v1/countries/VN"), real, script) for label, real in reals
        ]
        stats = measure_interleaved(
            [*targets, Target("bare", bare.url("/v1/countries/VN"), bare, script)], ctx.load
        )
        _report_errors(stats)
    return result_class(
        name="asof",
        title="GET /v1/countries/{random}?as_of={random}[&known_at=...], cold, vs. bare Flask (same size)",
        stats=stats,
        ratios=[
            ratio(
                each, stats[-1], target=None if each.target.name.endswith("-nocache") else ASOF_TARGET_RATIO
            )
            for each in stats[:-1]
        ],
    )


def bench_deep(ctx, prepare_database, result_class, ratio):
    with databases(ctx, "deep", prepare_database) as found, contextlib.ExitStack() as stack:
        workdir = ctx.workdir / "deep"
        targets = []
        for label, url in found:
            deep = add_entry(url, DEEP_CHANGES, exclude=set())
            short = add_entry(url, SHORT_CHANGES, exclude={deep})
            analyse(url)
            server = _server(ctx, stack, f"deep-{label}", url)
            rng = random.Random(13)
            deep_sizes = [len(_fetch_ok(server, random_path([deep], rng))) for _ in range(SAMPLE // 2)]
            short_sizes = [len(_fetch_ok(server, random_path([short], rng))) for _ in range(SAMPLE // 2)]
            print(
                f"  deep ({label}): {deep} has {DEEP_CHANGES} changes on one list (answers "
                f"{min(deep_sizes)}-{max(deep_sizes)} bytes), {short} has {SHORT_CHANGES} "
                f"({min(short_sizes)}-{max(short_sizes)})"
            )
            for kind, code in (("deep", deep), ("short", short)):
                script = wrk_script(workdir / f"{kind}-{label}.lua", request_lua([code]))
                targets.append(Target(f"{kind}-{label}", server.url(f"/v1/countries/{code}"), server, script))
        stats = measure_interleaved(targets, ctx.load)
        _report_errors(stats)
    return result_class(
        name="deep",
        title=f"random-date lookups of an entry with {DEEP_CHANGES} changes vs. one with {SHORT_CHANGES}",
        stats=stats,
        ratios=[ratio(stats[i], stats[i + 1], target=DEEP_TARGET_RATIO) for i in range(0, len(stats), 2)],
    )
