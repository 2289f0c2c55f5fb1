"""Configuration, read once from the environment.

Tests (and `create_app(config=...)`) pass a mapping that overrides these values.
"""

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path("var") / "exportctl.sqlite3"
DEFAULT_SEEDS_PATH = Path(__file__).resolve().parent.parent / "seeds"

# Standard Webhooks' recommended retry schedule: delays before attempts 2..10.
DEFAULT_RETRY_SCHEDULE = "5s,5m,30m,2h,5h,10h,14h,20h,24h"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """'5s', '30m', '2h', '1d', '250ms' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 5s, 30m, 2h, 1d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(value: str | int) -> int:
    """'64MB', '512KiB' or a number of bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 64MB, 512KB or a number of bytes)")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def parse_schedule(value: str | list) -> list[timedelta]:
    items = value.split(",") if isinstance(value, str) else value
    return [parse_duration(item) for item in items if str(item).strip()]


def parse_per_list(value: str | dict) -> dict[str, timedelta]:
    """'us-ear-d1=30d,eu-dual-use=90d' -> {list id: duration}."""
    if isinstance(value, dict):
        return {k: parse_duration(v) for k, v in value.items()}
    out = {}
    for item in value.split(","):
        if not item.strip():
            continue
        list_id, sep, duration = item.partition("=")
        if not sep or not list_id.strip():
            raise ValueError(f"not a list=duration pair: {item!r} (use e.g. us-ear-d1=30d)")
        out[list_id.strip()] = parse_duration(duration)
    return out


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    return value.strip().lower() in {"1", "true", "yes", "on"}


def parse_origins(value: str | list) -> list[str]:
    """'*', 'none', or origins separated by commas ('https://app.example.com,https://b.example')."""
    items = value.split(",") if isinstance(value, str) else value
    origins = [item.strip().rstrip("/") for item in items if item.strip()]
    return [] if origins in ([], ["none"]) else origins


LOG_FORMATS = ("json", "text")


def parse_log_format(value: str) -> str:
    """'json' (one object per line, for log pipelines) or 'text' (for a terminal)."""
    chosen = value.strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"not a log format: {value!r} (use json or text)")
    return chosen


def parse_log_level(value: str) -> str:
    chosen = value.strip().upper()
    if chosen not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"not a log level: {value!r} (use DEBUG, INFO, WARNING or ERROR)")
    return chosen


def default_database_url() -> str:
    return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


# name -> (environment variable, default, parser)
# name: (environment variable, default, parser of the variable's text)
SETTINGS: dict[str, tuple[str, Any, Callable[[str], Any]]] = {
    "DATABASE_URL": ("DATABASE_URL", None, str),
    # Serving (`exportctl run|serve`, and gunicorn through service/gunicorn_conf.py).
    "HOST": ("HOST", "127.0.0.1", str),
    "PORT": ("PORT", 8000, int),
    "WEB_WORKERS": ("EXPORTCTL_WEB_WORKERS", 2, int),
    "WEB_THREADS": ("EXPORTCTL_WEB_THREADS", 4, int),
    "SEEDS_PATH": ("EXPORTCTL_SEEDS", DEFAULT_SEEDS_PATH, Path),
    "READS_REQUIRE_KEY": ("EXPORTCTL_READS_REQUIRE_KEY", False, _bool),
    # Signs the pages' session cookie (sign-in) and CSRF tokens; random per process when unset.
    "SECRET_KEY": ("EXPORTCTL_SECRET_KEY", None, str),
    "SESSION_COOKIE_SECURE": ("EXPORTCTL_SESSION_COOKIE_SECURE", False, _bool),
    "WRITE_RATE_LIMIT": ("EXPORTCTL_WRITE_RATE_LIMIT", "120 per minute", str),
    "RATELIMIT_STORAGE_URI": ("EXPORTCTL_RATELIMIT_STORAGE_URI", "memory://", str),
    "RATELIMIT_NAMESPACE": ("EXPORTCTL_RATELIMIT_NAMESPACE", "exportctl-writes", str),
    # Browser apps (CORS): origins that may read, and origins that may also write ('none' for none).
    "CORS_READ_ORIGINS": ("EXPORTCTL_CORS_READ_ORIGINS", "*", parse_origins),
    "CORS_WRITE_ORIGINS": ("EXPORTCTL_CORS_WRITE_ORIGINS", "none", parse_origins),
    # Compress large responses for clients that accept it (off behind a proxy that compresses).
    "COMPRESS_RESPONSES": ("EXPORTCTL_COMPRESS_RESPONSES", True, _bool),
    # GET /metrics (Prometheus); a token, when set, must be sent as a bearer token to read it.
    "METRICS": ("EXPORTCTL_METRICS", True, _bool),
    "METRICS_TOKEN": ("EXPORTCTL_METRICS_TOKEN", None, str),
    # Logs: one JSON object per line (log pipelines), or text for a terminal (`make run` uses text).
    "LOG_FORMAT": ("EXPORTCTL_LOG_FORMAT", "json", parse_log_format),
    "LOG_LEVEL": ("EXPORTCTL_LOG_LEVEL", "INFO", parse_log_level),
    "IDEMPOTENCY_TTL": ("EXPORTCTL_IDEMPOTENCY_TTL", "48h", parse_duration),
    # Each process's cache of rendered documents (lookups, pages, feed pages), bounded in bytes:
    # least recently used documents go first. '64MB', '512KB' or a number of bytes.
    "CACHE_MAX_BYTES": ("EXPORTCTL_CACHE_MAX_BYTES", "64MB", parse_size),
    "WEBHOOK_RETRY_SCHEDULE": (
        "EXPORTCTL_WEBHOOK_RETRY_SCHEDULE",
        DEFAULT_RETRY_SCHEDULE,
        parse_schedule,
    ),
    "WEBHOOK_RETRY_JITTER": ("EXPORTCTL_WEBHOOK_RETRY_JITTER", 0.2, float),
    "WEBHOOK_MAX_RETRY_AFTER": ("EXPORTCTL_WEBHOOK_MAX_RETRY_AFTER", "24h", parse_duration),
    "WEBHOOK_DISABLE_AFTER": ("EXPORTCTL_WEBHOOK_DISABLE_AFTER", "5d", parse_duration),
    "WEBHOOK_SECRET_OVERLAP": ("EXPORTCTL_WEBHOOK_SECRET_OVERLAP", "24h", parse_duration),
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": ("EXPORTCTL_WEBHOOK_ALLOW_PRIVATE_TARGETS", False, _bool),
    "WEBHOOK_REQUIRE_HTTPS": ("EXPORTCTL_WEBHOOK_REQUIRE_HTTPS", False, _bool),
    "WEBHOOK_CONNECT_TIMEOUT": ("EXPORTCTL_WEBHOOK_CONNECT_TIMEOUT", "5s", parse_duration),
    "WEBHOOK_READ_TIMEOUT": ("EXPORTCTL_WEBHOOK_READ_TIMEOUT", "30s", parse_duration),
    # How long a claimed delivery stays the worker's without a heartbeat: a live worker renews
    # it every third of it, so a killed worker's deliveries are taken over within this.
    "WORKER_LEASE": ("EXPORTCTL_WORKER_LEASE", "15s", parse_duration),
    "WORKER_CONCURRENCY": ("EXPORTCTL_WORKER_CONCURRENCY", 16, int),
    "WORKER_BATCH_SIZE": ("EXPORTCTL_WORKER_BATCH_SIZE", 64, int),
    "WORKER_POLL_INTERVAL": ("EXPORTCTL_WORKER_POLL_INTERVAL", "200ms", parse_duration),
    # The worker's own Prometheus metrics, served on HOST at this port (0: not served).
    "WORKER_METRICS_PORT": ("EXPORTCTL_WORKER_METRICS_PORT", 0, int),
    # Importers (exportctl watch): where the regulator's APIs are, and how politely to read them.
    "IMPORT_WATCH": ("EXPORTCTL_IMPORT_WATCH", False, _bool),
    "IMPORT_WATCH_INTERVAL": ("EXPORTCTL_IMPORT_WATCH_INTERVAL", "6h", parse_duration),
    "ECFR_BASE_URL": ("EXPORTCTL_ECFR_BASE_URL", "https://www.ecfr.gov", str),
    "FEDERAL_REGISTER_BASE_URL": (
        "EXPORTCTL_FEDERAL_REGISTER_BASE_URL",
        "https://www.federalregister.gov",
        str,
    ),
    "IMPORT_LOOKBACK": ("EXPORTCTL_IMPORT_LOOKBACK", "30d", parse_duration),
    "IMPORT_USER_AGENT": (
        "EXPORTCTL_IMPORT_USER_AGENT",
        "exportctl-importer/0.1 (export-control list service; reads 15 CFR 740 once per run)",
        str,
    ),
    "IMPORT_CONNECT_TIMEOUT": ("EXPORTCTL_IMPORT_CONNECT_TIMEOUT", "5s", parse_duration),
    "IMPORT_READ_TIMEOUT": ("EXPORTCTL_IMPORT_READ_TIMEOUT", "60s", parse_duration),
    "IMPORT_RETRIES": ("EXPORTCTL_IMPORT_RETRIES", 4, int),
    "IMPORT_BACKOFF": ("EXPORTCTL_IMPORT_BACKOFF", "2s", parse_duration),
    # Freshness (GET /v1/status): a list unchecked for longer is stale. Lists whose source
    # publishes amendments (eCFR, Federal Register) age faster; per-list overrides: "id=30d,id=90d".
    "FRESHNESS_MAX_AGE_AMENDED": ("EXPORTCTL_FRESHNESS_MAX_AGE_AMENDED", "35d", parse_duration),
    "FRESHNESS_MAX_AGE": ("EXPORTCTL_FRESHNESS_MAX_AGE", "365d", parse_duration),
    "FRESHNESS_MAX_AGE_BY_LIST": ("EXPORTCTL_FRESHNESS_MAX_AGE_BY_LIST", "", parse_per_list),
}


def load_config(environ: Mapping[str, str] | None = None) -> dict:
    environ = os.environ if environ is None else environ
    config = {}
    for name, (variable, default, parse) in SETTINGS.items():
        raw = environ.get(variable)
        config[name] = (
            parse(raw)
            if raw is not None and raw != ""
            else (parse(default) if isinstance(default, str) and parse is not str else default)
        )
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = default_database_url()
    return config


def normalise(config: Mapping) -> dict:
    """Parse values a caller passed as strings (tests pass plain mappings)."""
    out = dict(config)
    for name, (_variable, _default, parse) in SETTINGS.items():
        if name in out and isinstance(out[name], str) and parse is not str:
            out[name] = parse(out[name])
    return out


def gunicorn_options(config: Mapping, *, host: str | None = None, port: int | None = None) -> dict:
    """gunicorn's settings from ours (`exportctl serve` and service/gunicorn_conf.py)."""
    from service.logs import gunicorn_logconfig

    return {
        "bind": f"{host or config['HOST']}:{port or config['PORT']}",
        "workers": config["WEB_WORKERS"],
        "worker_class": "service.gunicorn_worker.ProblemThreadWorker",  # gthread, errors as problem+json
        "threads": config["WEB_THREADS"],
        # The app logs every request itself (service/logs.py); gunicorn's own lines take its format.
        "accesslog": None,
        "logconfig_dict": gunicorn_logconfig(config),
        "timeout": 60,
        # gunicorn 27's control socket defaults to one path per user: two services would share it.
        "control_socket_disable": True,
    }
