"""Building blocks for `make bench`: gunicorn servers, interleaved wrk runs, medians, the table.

Kept apart from run.py so that each benchmark (the country lookup now, others later) only
says what it serves and what it compares; how servers are started and stopped, and how
load is applied and summarised, stays the same for all of them.
"""

import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT_LUA = HERE / "wrk_report.lua"
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
DURATION = re.compile(r"^[1-9]\d*[smh]?$")


class BenchError(RuntimeError):
    """A failure that makes the numbers meaningless: a server died, wrk failed, bytes differ."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class GunicornSettings:
    """The one set of gunicorn options every server of a comparison gets, so only the app differs.

    Defaults mirror service/gunicorn_conf.py and service/cli.py `_gunicorn_options` (same
    environment variables), except that the access log is off for every server: writing a
    line per request would measure logging rather than the app.
    """

    workers: int = 2
    worker_class: str = "gthread"
    threads: int = 4
    timeout: int = 60

    def __post_init__(self):
        if self.workers < 1 or self.threads < 1:
            raise ValueError("gunicorn needs at least one worker and one thread")

    def argv(self, bind: str) -> list[str]:
        return [
            "--bind",
            bind,
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
            "--timeout",
            str(self.timeout),
            # No --access-logfile: gunicorn then writes no access log at all.
            "--error-logfile",
            "-",
            # Otherwise every server (and a `make run` alongside) shares ~/.gunicorn/gunicorn.ctl.
            "--no-control-socket",
        ]

    def describe(self) -> str:
        return (
            f"{self.workers} workers, worker_class={self.worker_class}, threads={self.threads}, "
            f"timeout={self.timeout}s, access log off"
        )


@dataclass(frozen=True)
class LoadSettings:
    """How wrk loads each target: one measurement per target per repetition, after a warm-up."""

    duration: str = "10s"
    reps: int = 3
    connections: int = 16
    threads: int = 1
    warmup: str = "2s"

    def __post_init__(self):
        for name in ("duration", "warmup"):
            value = getattr(self, name)
            if not (DURATION.match(value) or (name == "warmup" and value == "0")):
                raise ValueError(f"{name} must look like 10s, 2m or 30 (seconds), got {value!r}")
        if self.reps < 1:
            raise ValueError("reps must be at least 1")
        if self.connections < self.threads or self.threads < 1:
            raise ValueError("need at least one wrk thread and at least one connection per thread")

    def describe(self) -> str:
        return (
            f"wrk -t{self.threads} -c{self.connections} -d{self.duration} --latency, "
            f"{self.reps} interleaved repetition(s), warm-up {self.warmup} per target"
        )


def seconds(duration: str) -> int:
    """wrk's duration syntax (10s, 2m, 1h, bare seconds) in seconds, for timeouts and estimates."""
    if duration == "0":
        return 0
    unit = duration[-1]
    if unit.isdigit():
        return int(duration)
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[unit]


# ---------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"the {self.name} server exited with status {self.process.returncode}; "
                f"its log ends:\n{tail(self.log_path)}"
            )


def port_range() -> range | None:
    """BENCH_PORTS=8500-8599 keeps every server and receiver of a run in that range (a shared
    machine); unset, the kernel picks any free port."""
    value = os.environ.get("BENCH_PORTS", "").strip()
    if not value:
        return None
    low, _, high = value.partition("-")
    return range(int(low), int(high or low) + 1)


_next_port = 0


def free_port() -> int:
    # The kernel picks an unused port (or the next free one of BENCH_PORTS); the tiny window
    # before gunicorn binds it shows up as an early exit with "Address already in use" in the
    # server log, never as wrong numbers.
    global _next_port
    ports = port_range()
    candidates = [0] if ports is None else [*ports[_next_port:], *ports[:_next_port]]
    for index, port in enumerate(candidates):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            if ports is not None:  # round-robin, so a server just stopped is not reused at once
                _next_port = (_next_port + index + 1) % len(ports)
            return sock.getsockname()[1]
    raise BenchError(f"no free port in BENCH_PORTS={os.environ.get('BENCH_PORTS')}")


def rss_mb(pid: int) -> float | None:
    """Resident memory of one process in MB, from /proc (Linux only)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def children(pid: int) -> list[int]:
    """Direct children of `pid` (gunicorn's workers under its master)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def workers_rss(server: "Server") -> str:
    """RSS of each of a gunicorn server's workers, e.g. '61 MB, 63 MB'."""
    sizes = [rss_mb(pid) for pid in children(server.process.pid)]
    return ", ".join(f"{size:.0f} MB" for size in sizes if size is not None) or "n/a"


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The current environment plus `extra`, minus what would change gunicorn's settings behind our back."""
    env = {key: value for key, value in os.environ.items() if key != "GUNICORN_CMD_ARGS"}
    env.update(extra)
    return env


@contextlib.contextmanager
def gunicorn_server(
    name: str,
    app: str,
    settings: GunicornSettings,
    workdir: Path,
    *,
    env: Mapping[str, str] = {},  # noqa: B006 - read only
    ready_path: str,
    pythonpath: Path | None = None,
) -> Iterator[Server]:
    """Run `gunicorn app` on a free loopback port until the block exits, however it exits.

    The server gets its own session (process group), so Ctrl-C in the terminal reaches only
    this script, which then stops the whole group; cwd is `workdir`, so no stray
    ./gunicorn.conf.py is picked up.
    """
    port = free_port()
    log_path = workdir / f"{name}.gunicorn.log"
    argv = [sys.executable, "-m", "gunicorn", *settings.argv(f"{LOOPBACK}:{port}")]
    if pythonpath is not None:
        argv += ["--pythonpath", str(pythonpath)]
    argv.append(app)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name=name, port=port, process=process, log_path=log_path)
    try:
        wait_ready(server, ready_path)
        yield server
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the group (gunicorn's graceful stop), SIGKILL whatever is left after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # Also sweeps up workers that outlived their master.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a loopback GET, without urllib's proxy and redirect handling."""
    match = re.match(r"^http://([^/:]+):(\d+)(/.*)$", url)
    if match is None:
        raise ValueError(f"not a loopback http URL: {url}")
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    """Poll until `path` answers 200, failing fast (with the log) if the server exits instead."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        server.check_alive()
        try:
            status, _headers, _body = http_get(server.url(path), timeout=2.0)
        except OSError as error:
            last = str(error)
        else:
            if status == 200:
                return
            last = f"HTTP {status}"
        if time.monotonic() > deadline:
            raise BenchError(
                f"the {server.name} server did not answer 200 on {path} within {timeout:.0f}s "
                f"({last}); its log ends:\n{tail(server.log_path)}"
            )
        time.sleep(0.1)


# ---------------------------------------------------------------------------- load


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: Mapping[str, int]
    # CPUs' worth of work by anything but wrk, the servers and this script (None: not measurable).
    other_cpu: float | None = None
    # The least busy gunicorn worker's share of the workers' CPU time (None: one worker, or
    # not measurable); 1/workers when the load was spread evenly.
    least_worker_share: float | None = None
    # Runs thrown away before this one because a worker sat (nearly) idle (see `WorkerSplit`).
    reruns: int = 0
    # CPU seconds the server's workers spent in the run (None: not measurable). Per request it
    # is the cost of an answer, which other work on the machine barely moves (it slows the
    # server down, it does not make it work more), unlike requests/s.
    server_cpu: float | None = None

    @property
    def cpu_per_request(self) -> float | None:
        return self.server_cpu / self.requests if self.server_cpu is not None and self.requests else None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True)
class Target:
    """A URL to load, and the server behind it (for its log when something goes wrong)."""

    name: str
    url: str
    server: Server | None = None
    # A wrk script of its own (random paths, see `wrk_script`); None: the report script alone.
    script: Path | None = None


def wrk_script(path: Path, request_lua: str) -> Path:
    """Write a wrk script: `request_lua` (which may define request()) followed by the report hook."""
    path.write_text(f"{request_lua}\n{REPORT_LUA.read_text()}")
    return path


@dataclass
class TargetStats:
    target: Target
    runs: list[WrkResult] = field(default_factory=list)
    warmups: list[WrkResult] = field(default_factory=list)

    @property
    def median_rps(self) -> float:
        return statistics.median(run.rps for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def max_other_cpu(self) -> float | None:
        measured = [run.other_cpu for run in self.runs if run.other_cpu is not None]
        return max(measured) if measured else None

    @property
    def cpu_per_request(self) -> float | None:
        """Median over the runs of the server's CPU seconds per request (None: not measured)."""
        measured = [run.cpu_per_request for run in self.runs if run.cpu_per_request is not None]
        return statistics.median(measured) if len(measured) == len(self.runs) and measured else None

    @property
    def errors(self) -> int:
        """Non-2xx/3xx answers and socket errors (connect, read, write, timeout), warm-ups included."""
        return sum(run.error_count for run in (*self.warmups, *self.runs))


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk (unknown version)"


def run_wrk(url: str, duration: str, load: LoadSettings, script: Path | None = None) -> WrkResult:
    """One wrk run; its done() hook prints a WRKJSON line with exact percentiles.

    `script` replaces the report script: it must define the same done() hook (see
    `wrk_script`), and may add a request() that varies the path.
    """
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration}",
        "--latency",
        "-s",
        str(script or REPORT_LUA),
        url,
    ]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds(duration) + 60, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from error
    line = next((line for line in result.stdout.splitlines() if line.startswith("WRKJSON ")), None)
    if result.returncode != 0 or line is None:
        raise BenchError(
            f"wrk failed (exit {result.returncode}): {' '.join(argv)}\n{result.stdout}{result.stderr}"
        )
    data = json.loads(line.removeprefix("WRKJSON "))
    if data["requests"] == 0:
        raise BenchError(f"wrk completed no request against {url}:\n{result.stdout}")
    return WrkResult(
        requests=data["requests"],
        rps=data["rps"],
        p50_ms=data["lat_p50_us"] / 1000,
        p99_ms=data["lat_p99_us"] / 1000,
        errors={kind: data[f"err_{kind}"] for kind in ("connect", "read", "write", "status", "timeout")},
    )


class ForeignCpu:
    """How much CPU went to everything else during one wrk run, from /proc (Linux only).

    Interleaving evens out slow drift, but not a test suite or a noisy VM neighbour
    (hypervisor steal counts as foreign) that lands on one measurement: this shows when
    a run's numbers deserve no trust. Ours are this process, its reaped children (wrk)
    and every process in the servers' process groups.
    """

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_groups: Sequence[int]):
        self._groups = set(server_groups)
        self._start: tuple[float, float, float] | None = None

    def _busy(self) -> float:
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4]) / self.TICKS

    def _ours(self) -> float:
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) in self._groups:  # pgrp; utime and stime follow
                    total += int(fields[11]) + int(fields[12])
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return total / self.TICKS + sum(u.ru_utime + u.ru_stime for u in usage)

    def start(self) -> None:
        try:
            self._start = (time.monotonic(), self._busy(), self._ours())
        except OSError:
            self._start = None

    def stop(self) -> float | None:
        if self._start is None:
            return None
        started, busy, ours = self._start
        try:
            foreign = (self._busy() - busy) - (self._ours() - ours)
        except OSError:
            return None
        return max(foreign, 0.0) / max(time.monotonic() - started, 1e-9)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process, from /proc (Linux only)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ForeignCpu.TICKS
    return None


class WorkerSplit:
    """How a run's work fell on a gunicorn server's workers.

    gthread workers race to accept wrk's keep-alive connections, and now and then one of
    them takes every connection: the run then measures one core instead of the server
    (about 0.6x of a balanced run, here), and a ratio between two targets swings with
    the luck of that race rather than with their cost. `measure_interleaved` reruns such
    a run.
    """

    def __init__(self, server: "Server | None"):
        self._workers = children(server.process.pid) if server is not None else []
        self._start: list[float | None] = []

    def start(self) -> None:
        self._start = [cpu_seconds(pid) for pid in self._workers]

    def spent(self) -> list[float] | None:
        """CPU seconds each worker spent since `start` (None: not measurable)."""
        if not self._workers:
            return None
        spent = []
        for pid, before in zip(self._workers, self._start, strict=True):
            after = cpu_seconds(pid)
            if before is None or after is None:
                return None
            spent.append(after - before)
        return spent

    @staticmethod
    def least_share(spent: list[float] | None) -> float | None:
        if spent is None or len(spent) < 2:
            return None
        total = sum(spent)
        return min(spent) / total if total > 0 else None


# Below this share of the workers' CPU for the least busy worker, a run is unbalanced (an even
# split of two workers is 0.5); it is rerun up to UNBALANCED_RERUNS times, and the last kept.
MIN_WORKER_SHARE = 0.2
UNBALANCED_RERUNS = 4


def measure_interleaved(
    targets: Sequence[Target], load: LoadSettings, progress: Callable[[str], None] = print
) -> list[TargetStats]:
    """Warm every target up, then measure each once per repetition, reversing the order every other one.

    Interleaving spreads slow drift of the machine (thermal, other tenants) over all
    targets alike, so the ratio of their medians holds up even when absolute numbers move.
    A run that left a gunicorn worker idle is rerun (see `WorkerSplit`).
    """
    stats = [TargetStats(target) for target in targets]
    meter = ForeignCpu([target.server.process.pid for target in targets if target.server is not None])
    if load.warmup != "0":
        for entry in stats:
            progress(f"  warm-up {entry.target.name:<8} {load.warmup}")
            entry.warmups.append(run_wrk(entry.target.url, load.warmup, load, entry.target.script))
    for rep in range(1, load.reps + 1):
        order = stats if rep % 2 == 1 else stats[::-1]
        for entry in order:
            split = WorkerSplit(entry.target.server)
            for attempt in range(UNBALANCED_RERUNS + 1):
                meter.start()
                split.start()
                run = run_wrk(entry.target.url, load.duration, load, entry.target.script)
                spent = split.spent()
                run = replace(
                    run,
                    other_cpu=meter.stop(),
                    least_worker_share=split.least_share(spent),
                    reruns=attempt,
                    server_cpu=sum(spent) if spent is not None else None,
                )
                share = run.least_worker_share
                if share is None or share >= MIN_WORKER_SHARE or attempt == UNBALANCED_RERUNS:
                    break
                progress(
                    f"  rep {rep}  {entry.target.name:<8} {run.rps:>10.1f} req/s  thrown away: one worker "
                    f"did {percent(share)} of the work (wrk's connections landed on the other); again"
                )
            entry.runs.append(run)
            progress(
                f"  rep {rep}  {entry.target.name:<8} {run.rps:>10.1f} req/s  p50 {run.p50_ms:7.2f} ms"
                f"  p99 {run.p99_ms:7.2f} ms  errors {run.error_count}  other CPU {percent(run.other_cpu)}"
                f"  least worker {percent(run.least_worker_share)}"
                f"  server CPU {microseconds(run.cpu_per_request)}/req"
            )
    return stats


# ---------------------------------------------------------------------------- reporting


def machine_facts(gunicorn: GunicornSettings, load: LoadSettings) -> list[tuple[str, str]]:
    """What a reader needs to judge the numbers: they only compare within one run on one machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    loadavg = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    gunicorn_version = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        ("nproc", f"{os.cpu_count()} ({usable} usable){f', {cpu_model}' if cpu_model else ''}"),
        ("load average", loadavg),
        ("platform", platform.platform()),
        ("python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("gunicorn", f"{gunicorn_version}: {gunicorn.describe()} (same for every server)"),
        ("load", f"{wrk_version()}: {load.describe()}"),
    ]


def busy_warning() -> str | None:
    """A warning when something else already loads the machine: wrk and both servers share its CPUs."""
    one_minute = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if one_minute <= 0.5 * cpus:
        return None
    return (
        f"warning: load average {one_minute:.2f} on {cpus} CPUs before starting; other work competes "
        "with wrk and the servers, so expect noisy numbers (interleaving keeps the ratios fairer)"
    )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, first column left-aligned and the numbers right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(cell).ljust(width) if index == 0 else str(cell).rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, rows)])


def percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.0f}%"


def microseconds(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:.0f} us"


def stats_table(stats: Sequence[TargetStats]) -> str:
    return format_table(
        [
            "target",
            "median req/s",
            "req/s range",
            "p50 ms",
            "p99 ms",
            "errors",
            "max other CPU",
            "reruns",
            "server CPU/req",
        ],
        [
            [
                entry.target.name,
                f"{entry.median_rps:.0f}",
                f"{min(run.rps for run in entry.runs):.0f}-{max(run.rps for run in entry.runs):.0f}",
                f"{entry.p50_ms:.2f}",
                f"{entry.p99_ms:.2f}",
                str(entry.errors),
                percent(entry.max_other_cpu),
                str(sum(run.reruns for run in entry.runs)),
                microseconds(entry.cpu_per_request),
            ]
            for entry in stats
        ],
    )


def which_wrk() -> str | None:
    return shutil.which("wrk")
