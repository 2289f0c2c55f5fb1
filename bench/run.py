"""`make bench`: load-test the service against a bare Flask ceiling, side by side on this machine.

    .venv/bin/python bench/run.py                          # 3 interleaved reps of 10s, 16 connections
    .venv/bin/python bench/run.py --duration 2s --reps 1   # smoke run
    BENCH_DURATION=5s BENCH_REPS=5 make bench

Every server runs under gunicorn with the same settings on a fresh, seeded SQLite database
in a temp dir; wrk loads them in interleaved repetitions. Absolute requests/s depend on the
machine and its mood: compare the ratios, which this prints, not the absolute numbers.

A benchmark is a function taking a Context and returning a Result; add one to BENCHMARKS
and it runs in the same invocation (select with --only NAME).
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bulk
import fanout
import feed
import lookups
import pages
import scratch
import soak
import writes
from harness import (
    HERE,
    VENV_BIN,
    BenchError,
    GunicornSettings,
    LoadSettings,
    Target,
    TargetStats,
    busy_warning,
    gunicorn_server,
    http_get,
    machine_facts,
    measure_interleaved,
    seconds,
    stats_table,
    tail,
    which_wrk,
)

LOOKUP_PATH = "/v1/countries/VN"
LOOKUP_TARGET_RATIOS = {"sqlite": 0.80, "pg": 0.70}  # issue 13: of bare Flask serving the same bytes
# Above this share of one CPU going to other work during a measurement, say the run is noisy.
NOISY_OTHER_CPU = 0.15
# Headers of the real answer the bare app repeats, so both put the same bytes on the wire.
MIRRORED_HEADERS = ("ETag", "Cache-Control")


@dataclass(frozen=True)
class Context:
    """What every benchmark of one invocation shares: a scratch directory and the settings."""

    workdir: Path
    gunicorn: GunicornSettings
    load: LoadSettings
    # A PostgreSQL server's URL (a database to connect to for CREATE DATABASE): benchmarks that
    # support it also run on a scratch database there. None: SQLite only.
    postgres: str | None = None


@dataclass(frozen=True)
class Ratio:
    """Throughput of one target relative to another, with the goal it is held against."""

    numerator: str
    denominator: str
    value: float
    target: float | None = None
    # The same ratio within each repetition (adjacent runs): its spread shows how noisy the run was.
    per_rep: tuple[float, ...] = ()
    # The denominator's server CPU per request over the numerator's: the ratio the req/s would
    # have if the servers had the CPUs to themselves (None: not measured). Other work on the
    # machine moves it far less than the req/s, so when a run is noisy it is the one to read.
    by_cpu: float | None = None

    @property
    def meets_target(self) -> bool | None:
        return None if self.target is None else self.value >= self.target


@dataclass
class Result:
    name: str
    title: str
    stats: list[TargetStats]
    ratios: list[Ratio] = field(default_factory=list)
    # Figures of benchmarks that are not wrk runs (webhook fan-out), printed as they are.
    lines: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(entry.errors for entry in self.stats)


# ---------------------------------------------------------------------------- database


def exportctl(*args: str, database_url: str) -> None:
    """Run the venv's `exportctl` (the real CLI, as an operator would) against `database_url`."""
    command = [str(VENV_BIN / "exportctl"), *args]
    result = subprocess.run(
        command,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )


def prepare_database(workdir: Path) -> str:
    """A fresh SQLite database at head with the seed data, so runs never touch var/ or each other."""
    database_url = f"sqlite:///{workdir / 'exportctl.sqlite3'}"
    exportctl("db", "upgrade", database_url=database_url)
    exportctl("seed", database_url=database_url)
    return database_url


# ---------------------------------------------------------------------------- benchmarks


def bench_lookup(ctx: Context) -> Result:
    """GET /v1/countries/VN through the whole stack vs. bare Flask returning the same bytes,
    on SQLite and (with --postgres) PostgreSQL.

    Each database's bare app serves the bytes fetched from that database's real server (the
    seeds' recording times differ between them), so the comparison is the cost of producing
    the answer (routing, the version check, the cache), not of sending it.
    """
    targets = []
    with lookups.databases(ctx, "lookup", prepare_database) as found, contextlib.ExitStack() as servers:
        for label, database_url in found:
            real = servers.enter_context(
                gunicorn_server(
                    f"lookup-{label}",
                    "service.wsgi:app",
                    ctx.gunicorn,
                    ctx.workdir / "lookup",
                    env={"DATABASE_URL": database_url},
                    ready_path="/healthz",
                )
            )
            status, headers, body = http_get(real.url(LOOKUP_PATH))
            if status != 200:
                raise BenchError(f"GET {LOOKUP_PATH} answered {status}, not 200:\n{body[:500]!r}")
            content_type = headers.get("Content-Type", "")
            body_path = ctx.workdir / "lookup" / f"bare-{label}-body"
            body_path.write_bytes(body)
            bare = servers.enter_context(
                gunicorn_server(
                    f"bare-{label}",
                    "bare_app:app",
                    ctx.gunicorn,
                    ctx.workdir / "lookup",
                    env={
                        "BENCH_BARE_BODY": str(body_path),
                        "BENCH_BARE_CONTENT_TYPE": content_type,
                        "BENCH_BARE_HEADERS": json.dumps(
                            {name: headers[name] for name in MIRRORED_HEADERS if name in headers}
                        ),
                        "BENCH_BARE_PATH": LOOKUP_PATH,
                    },
                    ready_path=LOOKUP_PATH,
                    pythonpath=HERE,
                )
            )
            _status, bare_headers, bare_body = http_get(bare.url(LOOKUP_PATH))
            if bare_body != body or bare_headers.get("Content-Type") != content_type:
                raise BenchError("the bare app does not serve the same bytes and Content-Type as the lookup")
            print(
                f"  lookup-{label}: {len(body)} bytes of {content_type},"
                f" on {real.url('')}; bare on {bare.url('')}"
            )
            targets += [
                Target(f"lookup-{label}", real.url(LOOKUP_PATH), real),
                Target(f"bare-{label}", bare.url(LOOKUP_PATH), bare),
            ]
        stats = measure_interleaved(targets, ctx.load)
        # Read the logs while the servers still exist, in case a target had errors.
        for entry in stats:
            if entry.errors and entry.target.server is not None:
                print(f"  {entry.target.name} had {entry.errors} errors; its server log ends:")
                print(tail(entry.target.server.log_path))
    pairs = [stats[index : index + 2] for index in range(0, len(stats), 2)]
    return Result(
        name="lookup",
        title=f"GET {LOOKUP_PATH} (cached): the service vs. bare Flask serving the same bytes",
        stats=stats,
        ratios=[
            ratio(*pair, target=LOOKUP_TARGET_RATIOS[pair[0].target.name.removeprefix("lookup-")])
            for pair in pairs
        ],
    )


def ratio(numerator: TargetStats, denominator: TargetStats, target: float | None = None) -> Ratio:
    """Median req/s of one target over another's, and per repetition."""
    cpu = numerator.cpu_per_request, denominator.cpu_per_request
    return Ratio(
        numerator=numerator.target.name,
        denominator=denominator.target.name,
        value=numerator.median_rps / denominator.median_rps,
        target=target,
        per_rep=tuple(a.rps / b.rps for a, b in zip(numerator.runs, denominator.runs, strict=True)),
        by_cpu=cpu[1] / cpu[0] if cpu[0] and cpu[1] else None,
    )


def bench_fanout(ctx: Context) -> Result:
    """One change to 200 webhook subscriptions on a local receiver: deliveries/s, latency p50/p99."""
    return fanout.bench_fanout(ctx, prepare_database, Result)


def bench_pages(ctx: Context) -> Result:
    """The country page vs. the JSON lookup behind it: the page may cost at most twice as much."""
    return pages.bench_pages(ctx, prepare_database, Result, ratio)


def bench_feed(ctx: Context) -> Result:
    """Event pages at random cursors (cold) and Atom vs. the cached first page, a million events."""
    return feed.bench_feed(ctx, Result, ratio)


def bench_bulk(ctx: Context) -> Result:
    """The snapshot (CSV, JSON Lines) and the changes between two dates: time, memory, queries."""
    return bulk.bench_bulk(ctx, prepare_database, Result)


BENCHMARKS: dict[str, Callable[[Context], Result]] = {
    "lookup": bench_lookup,
    "pages": bench_pages,
    "fanout": bench_fanout,
    "bulk": bench_bulk,
    "asof": lambda ctx: lookups.bench_asof(ctx, prepare_database, Result, ratio),
    "deep": lambda ctx: lookups.bench_deep(ctx, prepare_database, Result, ratio),
    "feed": bench_feed,
    "writes": lambda ctx: writes.bench_writes(ctx, prepare_database, Result),
    "soak": lambda ctx: soak.bench_soak(ctx, Result),
}


# ---------------------------------------------------------------------------- command line


def print_result(result: Result) -> None:
    print(f"\n== {result.name}: {result.title}")
    if result.stats:
        print(stats_table(result.stats))
    for line in result.lines:
        print(line)
    for each in result.ratios:
        verdict = ""
        if each.target is not None:
            verdict = f"  (target >= {each.target:.2f}: {'met' if each.meets_target else 'NOT met'})"
        print(f"ratio {each.numerator}/{each.denominator} (median req/s): {each.value:.2f}{verdict}")
        if len(each.per_rep) > 1:
            print(f"  per repetition: {', '.join(f'{value:.2f}' for value in each.per_rep)}")
        if each.by_cpu is not None:
            print(f"  by server CPU per request: {each.by_cpu:.2f}")
    noisy = [
        entry.target.name
        for entry in result.stats
        if entry.max_other_cpu is not None and entry.max_other_cpu > NOISY_OTHER_CPU
    ]
    if noisy:
        print(
            f"NOISY: other processes (or hypervisor steal) took over {NOISY_OTHER_CPU:.0%} of a CPU while "
            f"measuring {', '.join(noisy)}; rerun on an idle machine before trusting these numbers"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    # String defaults go through `type` too, so a bad BENCH_* value gets argparse's message.
    env = os.environ
    parser = argparse.ArgumentParser(
        description="Load-test the service against a bare Flask ceiling (compare the ratios).",
        epilog="Every option also reads its BENCH_* environment variable; "
        "gunicorn workers/threads default to EXPORTCTL_WEB_WORKERS/EXPORTCTL_WEB_THREADS like the service.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable; default: all)",
    )
    parser.add_argument(
        "--duration",
        default=env.get("BENCH_DURATION", "10s"),
        help="wrk duration per measurement, e.g. 10s (BENCH_DURATION; default %(default)s)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=env.get("BENCH_REPS", "3"),
        help="interleaved repetitions (BENCH_REPS; default %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=env.get("BENCH_CONNECTIONS", "16"),
        help="wrk connections (BENCH_CONNECTIONS; default %(default)s)",
    )
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=env.get("BENCH_WRK_THREADS", "1"),
        help="wrk threads (BENCH_WRK_THREADS; default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        default=env.get("BENCH_WARMUP", "2s"),
        help="warm-up run per target before measuring, 0 for none (BENCH_WARMUP; default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=env.get("EXPORTCTL_WEB_WORKERS", "2"),
        help="gunicorn workers per server (default %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=env.get("EXPORTCTL_WEB_THREADS", "4"),
        help="gunicorn gthread threads per worker (default %(default)s)",
    )
    parser.add_argument(
        "--postgres",
        default=env.get("BENCH_POSTGRES_URL") or None,
        metavar="URL",
        help="also run the workloads on PostgreSQL, in a scratch database created "
        "(and dropped) on this server, e.g. postgresql://postgres@127.0.0.1:5432/postgres "
        "(BENCH_POSTGRES_URL)",
    )
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, _frame) -> None:
    # Turn SIGTERM into an exception so the servers' `finally` blocks stop them.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        load = LoadSettings(
            duration=args.duration,
            reps=args.reps,
            connections=args.connections,
            threads=args.wrk_threads,
            warmup=args.warmup,
        )
        gunicorn = GunicornSettings(workers=args.workers, threads=args.threads)
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if which_wrk() is None:
        print(
            "bench: wrk is not on PATH. Install it (Debian/Ubuntu: `sudo apt-get install wrk`; "
            "macOS: `brew install wrk`), or run `make bench`, which installs it with apt-get.",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    names = args.only or list(BENCHMARKS)

    print("machine (numbers compare only within this run: read the ratios, not the absolute req/s)")
    for key, value in machine_facts(gunicorn, load):
        print(f"  {key:<13} {value}")
    per_target = seconds(load.warmup) + load.reps * seconds(load.duration)
    print(f"  about {per_target}s of load per target, plus server start-up")
    if warning := busy_warning():
        print(f"  {warning}")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="exportctl-bench-") as tmp:
        scratch.ADMIN_URL = args.postgres or ""  # one server for every workload's scratch databases
        ctx = Context(workdir=Path(tmp), gunicorn=gunicorn, load=load, postgres=args.postgres)
        for name in names:
            print(f"\n-- {name}")
            try:
                results.append(BENCHMARKS[name](ctx))
            except BenchError as error:
                print(f"bench {name} failed: {error}", file=sys.stderr)
                return 1

    for result in results:
        print_result(result)
    print("\nAbsolute req/s vary between machines and runs; the ratios are the comparison.")
    failed = [result.name for result in results if result.errors]
    if failed:
        print(f"bench: errors (non-2xx answers or socket errors) in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The servers are already stopped by then (their `finally` ran on the way out).
        print("\nbench: interrupted", file=sys.stderr)
        sys.exit(130)
