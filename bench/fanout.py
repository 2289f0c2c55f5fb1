"""Webhook fan-out: one recorded change to N subscriptions, through the real API and worker,
against a plain pooled `requests` loop posting the same payloads to the same receiver.

The API runs under gunicorn and `exportctl worker` runs as its own process, as in
production, on a fresh seeded scratch database (SQLite, and PostgreSQL when
BENCH_POSTGRES_URL is set, see scratch.py); the receiver is a keep-alive HTTP server in
this process that notes when each delivery arrives. For each subscription count
(BENCH_FANOUT_SUBSCRIPTIONS, default 200,2000) a change is recorded CHANGES times:

- deliveries/s: N over the time from the write's response (its commit is done) to the
  last delivery; the reference is a pooled `requests` loop (one Session, as many threads
  as the worker's concurrency, in a process of its own) posting N bodies of the same size
  with the same headers to the same receiver, run after each change (interleaved). The
  issue's bar: at least 0.6 of it.
- first delivery: after the write's response, and after the change's `recorded_at` (the
  server's clock, taken before the commit: an upper bound). The bar: within 100 ms of the
  commit on PostgreSQL (the worker is woken by NOTIFY), within the poll interval on SQLite.

RSS of the web workers and of the webhook worker are printed before and after.
"""

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import scratch
from harness import (
    LOOPBACK,
    VENV_BIN,
    BenchError,
    clean_env,
    free_port,
    gunicorn_server,
    rss_mb,
    stop_process_group,
    tail,
    workers_rss,
)

SUBSCRIPTIONS = [
    int(n) for n in os.environ.get("BENCH_FANOUT_SUBSCRIPTIONS", "200,2000").split(",") if n.strip()
]
CHANGES = int(os.environ.get("BENCH_FANOUT_CHANGES", "3"))
CONCURRENCY = int(os.environ.get("EXPORTCTL_WORKER_CONCURRENCY", "16"))
FANOUT_TARGET_RATIO = 0.60
FIRST_DELIVERY_TARGET_MS = {"postgresql": 100.0}
SERVICE_ENV = {
    "EXPORTCTL_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on 127.0.0.1
    "EXPORTCTL_WRITE_RATE_LIMIT": "100000 per minute",  # 2,000 subscriptions are 2,000 writes
}
POLL_INTERVAL_MS = 200.0  # the worker's default (EXPORTCTL_WORKER_POLL_INTERVAL)

# The reference: what a plain program posting the same bodies to the same receiver achieves.
REFERENCE = """
import sys, time, requests
from concurrent.futures import ThreadPoolExecutor
from requests.adapters import HTTPAdapter
base, count, threads, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = b"x" * size
headers = {"Content-Type": "application/json", "webhook-id": "evt_0",
           "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1," + "A" * 44}
session = requests.Session()
session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))
def post(index):
    with session.post(f"{base}/ref/{index}", data=body, headers=headers, timeout=(5, 30),
                      allow_redirects=False, stream=True) as response:
        response.raw.read1(2048, decode_content=False)
post(-1)  # connect once, as the worker's session already has
started = time.perf_counter()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(post, range(count)))
print(count / (time.perf_counter() - started))
"""


class Arrivals:
    """When each delivery reached the receiver (time.time(), comparable with the server's clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[tuple[str, str], float] = {}
        self._count = threading.Condition(self._lock)
        self.size = 0

    def note(self, path: str, message_id: str, size: int = 0) -> None:
        now = time.time()
        self.size = size
        with self._count:
            self._times.setdefault((path, message_id), now)
            self._count.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._times)

    def reset(self) -> None:
        with self._count:
            self._times.clear()

    def wait_for(self, count: int, timeout: float) -> list[float]:
        """Arrival times once `count` distinct deliveries (subscription, webhook-id) have arrived."""
        deadline = time.monotonic() + timeout
        with self._count:
            while len(self._times) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"only {len(self._times)} of {count} deliveries arrived")
                self._count.wait(remaining)
            return sorted(self._times.values())


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrivals.note(self.path, self.headers.get("webhook-id", ""), len(body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def api_call(port: int, method: str, path: str, key: str, body: dict) -> dict:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        connection.request(
            method,
            path,
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise BenchError(f"{method} {path} answered {response.status}: {payload[:300]!r}")
        return json.loads(payload)
    finally:
        connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class CommitClock:
    """When writes that queue deliveries commit, seen from here: the bench LISTENs on the channel
    the writers NOTIFY in their transaction (PostgreSQL delivers it at the commit)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.times: list[float] = []
        self.stop = threading.Event()

    def __enter__(self) -> "CommitClock":
        import psycopg

        self.connection = psycopg.connect(self.url, autocommit=True)
        self.connection.execute("LISTEN exportctl_deliveries")
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()
        return self

    def _listen(self) -> None:
        while not self.stop.is_set():
            for _notice in self.connection.notifies(timeout=0.2, stop_after=1):
                self.times.append(time.time())

    def after(self, moment: float, timeout: float = 5.0) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t in self.times if t >= moment]
            if later:
                return later[0]
            time.sleep(0.01)
        return None

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join()
        self.connection.close()


def create_subscriptions(port: int, key: str, sink_port: int, first: int, last: int) -> None:
    def create(index: int) -> None:
        api_call(port, "POST", "/v1/webhooks", key, {"url": f"http://{LOOPBACK}:{sink_port}/hook/{index}"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(first, last)))


def reference_rate(sink_port: int, arrivals: "Arrivals", count: int, size: int) -> float:
    """Deliveries/s of the plain pooled `requests` loop, in a process of its own."""
    arrivals.reset()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            REFERENCE,
            f"http://{LOOPBACK}:{sink_port}",
            str(count),
            str(CONCURRENCY),
            str(size),
        ],
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    arrivals.wait_for(count + 1, timeout=60)  # every post reached the receiver (and the warm-up one)
    return float(result.stdout.strip())


def start_worker(stack: contextlib.ExitStack, workdir: Path, env: dict[str, str]) -> subprocess.Popen:
    """`exportctl worker` as a process of its own, as in production, stopped when `stack` closes;
    its log is workdir/worker.log."""
    worker_log = workdir / "worker.log"
    with worker_log.open("wb") as log:
        worker = subprocess.Popen(
            [str(VENV_BIN / "exportctl"), "worker"],
            cwd=workdir,
            env=clean_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.callback(stop_process_group, worker)
    # Let the worker start and go idle, so every change starts from the same state: its first
    # round (the schedule's events, such as list.stale for the seeded lists, then a claim)
    # notes its heartbeat. A fixed sleep was too short on a loaded machine: those events then
    # fanned out to the subscriptions being created and were sent during the measurement.
    deadline = time.monotonic() + 120
    while not _worker_beat(env["DATABASE_URL"]):
        if worker.poll() is not None:
            raise BenchError(f"the worker exited ({worker.returncode}):\n{tail(worker_log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"the worker did not start within 120 s:\n{tail(worker_log)}")
        time.sleep(0.2)
    time.sleep(1)
    return worker


def analyse(database_url: str) -> None:
    """Statistics after loading, as a database with autovacuum would have them (the PostgreSQL
    here runs without it: plans on stale statistics made one fan-out take a minute)."""
    connection = scratch.connect(database_url)
    try:
        if database_url.startswith("sqlite"):
            connection.execute("ANALYZE")
            connection.commit()
        else:
            connection.autocommit = True
            connection.execute("VACUUM ANALYZE")
    finally:
        connection.close()


def _worker_beat(database_url: str) -> bool:
    connection = scratch.connect(database_url)
    try:
        return connection.execute("SELECT count(*) FROM worker_heartbeats").fetchone()[0] > 0
    finally:
        connection.close()


def measure(ctx, backend: str) -> tuple[list[str], list[tuple[str, float, float]]]:
    workdir: Path = ctx.workdir / f"fanout-{backend}"
    workdir.mkdir()
    lines: list[str] = []
    ratios: list[tuple[str, float, float]] = []
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(scratch.seeded_database(backend, workdir, "fanout"))
        env = {"DATABASE_URL": database_url, **SERVICE_ENV}
        key = scratch.exportctl(
            "keys", "create", "--name", "bench", "--role", "editor", database_url=database_url, env=env
        ).strip()
        arrivals = Arrivals()
        sink = receiver(arrivals)
        stack.callback(sink.shutdown)
        api = stack.enter_context(
            gunicorn_server(
                f"api-{backend}", "service.wsgi:app", ctx.gunicorn, workdir, env=env, ready_path="/healthz"
            )
        )
        worker = start_worker(stack, workdir, env)
        commits = stack.enter_context(CommitClock(database_url)) if backend == "postgresql" else None
        rss_before = (workers_rss(api), rss_mb(worker.pid))
        created = 0
        change = 0
        for count in SUBSCRIPTIONS:
            create_subscriptions(api.port, key, sink.server_port, created, count)
            created = count
            analyse(database_url)
            time.sleep(1)
            rates, references, firsts, firsts_recorded, firsts_commit, size = [], [], [], [], [], 0
            for _ in range(CHANGES):
                arrivals.reset()
                sent = time.time()
                created_change = api_call(
                    api.port,
                    "POST",
                    "/v1/lists/us-ear-d1/entries/VN/changes",
                    key,
                    {
                        "status": "removed" if change % 2 == 0 else "listed",
                        "effective_on": f"2026-03-{change % 28 + 1:02d}",
                        "sources": [
                            {"title": "bench", "publisher": "bench", "url": "https://example.org/bench"}
                        ],
                    },
                )
                answered = time.time()
                change += 1
                recorded = datetime.fromisoformat(
                    created_change["change"]["recorded_at"].replace("Z", "+00:00")
                ).timestamp()
                times = arrivals.wait_for(count, timeout=300)
                size = arrivals.size
                rates.append(count / (times[-1] - answered))
                firsts.append((times[0] - answered) * 1000)
                firsts_recorded.append((times[0] - recorded) * 1000)
                committed = commits.after(sent) if commits is not None else None
                if committed is not None:
                    firsts_commit.append((times[0] - committed) * 1000)
                print(
                    f"  {backend} {count} subscriptions: delivered in {times[-1] - answered:.2f}s after the "
                    f"response ({rates[-1]:.0f}/s); first {firsts[-1]:.0f} ms after the response, "
                    f"{firsts_recorded[-1]:.0f} ms after recorded_at "
                    f"(the write took {(answered - sent) * 1000:.0f} ms)"
                    + (
                        f"; {firsts_commit[-1]:.0f} ms after the commit's NOTIFY"
                        if committed is not None
                        else ""
                    )
                )
                # The reference right after each change (interleaved, not all at the end): the
                # machine's load then weighs on both alike.
                references.append(reference_rate(sink.server_port, arrivals, count, size))
                print(
                    f"  {backend} {count} subscriptions: pooled requests loop {references[-1]:.0f}/s; "
                    f"ratio {rates[-1] / references[-1]:.2f}"
                )
                time.sleep(1)  # idle again before the next change
            reference = statistics.median(references)
            rate = statistics.median(rates)
            ratios_each = [r / ref for r, ref in zip(rates, references, strict=True)]
            per_repetition = ", ".join(f"{value:.2f}" for value in ratios_each)
            ratio = statistics.median(ratios_each)  # of side-by-side pairs, not of two medians
            # The commit's moment: seen by our own LISTEN on PostgreSQL; on SQLite it lies between
            # recorded_at and the response, so the response is the (optimistic) bound judged.
            first = statistics.median(firsts_commit) if firsts_commit else statistics.median(firsts)
            basis = "after the commit (NOTIFY)" if firsts_commit else "after the response"
            goal = FIRST_DELIVERY_TARGET_MS.get(backend, POLL_INTERVAL_MS)
            lines.append(
                f"{backend:<10} {count:>5} subs: {rate:6.0f} deliveries/s vs. pooled requests loop "
                f"{reference:6.0f}/s: ratio {ratio:.2f} (target >= {FANOUT_TARGET_RATIO:.2f}: "
                f"{'met' if ratio >= FANOUT_TARGET_RATIO else 'NOT met'}; median of per repetition "
                f"{per_repetition}); first delivery "
                f"{statistics.median(firsts):.0f} ms after the response, "
                f"{statistics.median(firsts_recorded):.0f} ms after recorded_at, {first:.0f} ms {basis} "
                f"(median; target <= {goal:.0f} ms: {'met' if first <= goal else 'NOT met'})"
            )
        rss_after = (workers_rss(api), rss_mb(worker.pid))
        lines.append(
            f"{backend:<10} RSS: web workers {rss_before[0]} before, {rss_after[0]} after; webhook worker "
            f"{rss_before[1] or 0:.0f} MB before, {rss_after[1] or 0:.0f} MB after"
        )
    return lines, ratios


def bench_fanout(ctx, prepare_database, result_type):
    """Each subscription count, CHANGES changes each, on every configured database."""
    lines = [f"one worker process, concurrency {CONCURRENCY}; {CHANGES} changes per subscription count"]
    for backend in scratch.backends():
        lines += measure(ctx, backend)[0]
    if not scratch.ADMIN_URL:
        lines.append(
            "PostgreSQL not measured: set BENCH_POSTGRES_URL to a server to create scratch databases on"
        )
    return result_type(name="fanout", title="one change to many webhook subscriptions", stats=[], lines=lines)
