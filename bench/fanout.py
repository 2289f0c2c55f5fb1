"""Webhook fan-out: one recorded change to N subscriptions, through the real API and worker.

The API runs under gunicorn and `exportctl worker` runs as its own process, as in
production, on a fresh seeded SQLite database; the receiver is a keep-alive HTTP
server in this process that notes when each delivery arrives. Latency is from the
change's `recorded_at` (the server's clock, the same machine's) to arrival.
"""

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness import LOOPBACK, VENV_BIN, BenchError, clean_env, gunicorn_server, stop_process_group, tail

SUBSCRIPTIONS = int(os.environ.get("BENCH_FANOUT_SUBSCRIPTIONS", "200"))
CHANGES = int(os.environ.get("BENCH_FANOUT_CHANGES", "3"))
SERVICE_ENV = {
    "EXPORTCTL_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on 127.0.0.1
    "EXPORTCTL_WRITE_RATE_LIMIT": "100000 per minute",  # 200 subscriptions are 200 writes
}


class Arrivals:
    """When each delivery reached the receiver (time.time(), comparable with the server's clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[tuple[str, str], float] = {}
        self._count = threading.Condition(self._lock)

    def note(self, path: str, message_id: str) -> None:
        now = time.time()
        with self._count:
            self._times.setdefault((path, message_id), now)
            self._count.notify_all()

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
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrivals.note(self.path, self.headers.get("webhook-id", ""))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
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


def bench_fanout(ctx, prepare_database, result_type):
    """One change to SUBSCRIPTIONS subscriptions, CHANGES times; deliveries/s and latency."""
    workdir: Path = ctx.workdir / "fanout"
    workdir.mkdir()
    database_url = prepare_database(workdir)
    env = {"DATABASE_URL": database_url, **SERVICE_ENV}
    key = subprocess.run(
        [str(VENV_BIN / "exportctl"), "keys", "create", "--name", "bench", "--role", "editor"],
        env=clean_env(env),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    arrivals = Arrivals()
    sink = receiver(arrivals)
    worker_log = workdir / "worker.log"
    with contextlib.ExitStack() as stack:
        stack.callback(sink.shutdown)
        api = stack.enter_context(
            gunicorn_server("api", "service.wsgi:app", ctx.gunicorn, workdir, env=env, ready_path="/healthz")
        )
        for index in range(SUBSCRIPTIONS):
            api_call(
                api.port,
                "POST",
                "/v1/webhooks",
                key,
                {"url": f"http://{LOOPBACK}:{sink.server_port}/hook/{index}"},
            )
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
        time.sleep(2)  # let the worker start and go idle, so every change starts from the same state
        if worker.poll() is not None:
            raise BenchError(f"the worker exited ({worker.returncode}):\n{tail(worker_log)}")
        rates, latencies, spans = [], [], []
        for change in range(CHANGES):
            arrivals.reset()
            created = api_call(
                api.port,
                "POST",
                "/v1/lists/us-ear-d1/entries/VN/changes",
                key,
                {
                    "status": "removed" if change % 2 == 0 else "listed",
                    "effective_on": f"2026-03-{change + 1:02d}",
                    "sources": [{"title": "bench", "publisher": "bench", "url": "https://example.org/bench"}],
                },
            )
            recorded = datetime.fromisoformat(
                created["change"]["recorded_at"].replace("Z", "+00:00")
            ).timestamp()
            times = arrivals.wait_for(SUBSCRIPTIONS, timeout=120)
            these = [t - recorded for t in times]
            latencies += these
            spans.append(times[-1] - recorded)
            rates.append(SUBSCRIPTIONS / (times[-1] - recorded))
            print(
                f"  change {change + 1}: {SUBSCRIPTIONS} deliveries in {times[-1] - recorded:.2f}s "
                f"({rates[-1]:.0f}/s), first after {these[0] * 1000:.0f} ms"
            )
            time.sleep(1)  # idle again before the next change
    lines = [
        f"subscriptions             {SUBSCRIPTIONS} (one worker process, "
        f"concurrency {os.environ.get('EXPORTCTL_WORKER_CONCURRENCY', '16')})",
        f"changes                   {CHANGES}",
        f"deliveries/s (median)     {statistics.median(rates):.0f}   "
        f"(range {min(rates):.0f}-{max(rates):.0f})",
        f"change-to-delivery p50    {percentile(latencies, 0.50) * 1000:.0f} ms",
        f"change-to-delivery p99    {percentile(latencies, 0.99) * 1000:.0f} ms",
        f"last delivery (median)    {statistics.median(spans) * 1000:.0f} ms after the change",
    ]
    return result_type(name="fanout", title="one change to many webhook subscriptions", stats=[], lines=lines)
