"""Logs for the entry points (the CLI, gunicorn, the worker): one JSON object per line, or plain text.

EXPORTCTL_LOG_FORMAT=json (the default: what log pipelines read) or text (`make run`, a terminal).
`create_app` configures no handler; it adds the request line (`init_app`), which goes wherever the
process's logging goes (pytest's caplog in the tests).

Every request is one line of the `exportctl.requests` logger:
    {"time":"...","level":"INFO","logger":"exportctl.requests","message":"POST /v1/... 201",
     "method":"POST","route":"/v1/lists/<list_id>/entries/<ref>/changes","path":"...",
     "status":201,"duration_ms":12.3,"request_id":"...","actor":"alice"}
The actor is the API key's name (never the key) or "anonymous". As a second line of defence, a filter
on the handler blanks anything shaped like an API key, a webhook secret, a signature or a bearer token
that a message might carry.
"""

import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from flask import Flask, Response, g, request
from pythonjsonlogger.orjson import OrjsonFormatter

REQUEST_LOGGER = "exportctl.requests"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}

# API keys (exk_…), Standard Webhooks secrets (whsec_…), their signatures (v1,<base64>) and
# bearer credentials, wherever they would appear in a message or a traceback: glued to what
# comes before them (`req_exk_…`), percent-encoded as a URL carries them (`exk%5F…`,
# `Bearer%20…`, `Bearer+…`), prefixes in any case.
_SECRET = re.compile(
    r"(?i:exk)(?:_|%5[Ff])[A-Za-z0-9_-]+"
    r"|(?i:whsec)(?:_|%5[Ff])[A-Za-z0-9+/=%]+"
    r"|v1(?:,|%2[Cc])[A-Za-z0-9+/=%]{16,}"
    r"|(?i:bearer(?:\s|%20|\+)+)[^\s'\",&]+"
)
REDACTED = "[redacted]"


# What every secret the pattern finds holds (in lower case): a line without any of them (nearly
# every line) is passed without running the pattern, which costs as much as the rest of a line.
_MARKERS = ("exk_", "exk%5f", "whsec_", "whsec%5f", "v1,", "v1%2c", "bearer")


def _may_hold_secret(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _MARKERS)


def holds_secret(text: str) -> bool:
    """Whether `text` holds something shaped like a key, a webhook secret or a bearer token."""
    return _may_hold_secret(text) and _SECRET.search(text) is not None


def redact(text: str) -> str:
    return _SECRET.sub(REDACTED, text) if _may_hold_secret(text) else text


class RedactSecrets(logging.Filter):
    """Blank secrets in a record's message, its structured fields and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        # Every line runs this (one per request): the other fields are looked at all at once, and
        # one by one only when something in them may be a secret.
        fields = vars(record)
        if _may_hold_secret("\0".join([v for v in fields.values() if isinstance(v, str)])):
            for name, value in list(fields.items()):
                if isinstance(value, str) and name not in ("msg", "exc_text"):
                    setattr(record, name, redact(value))
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        # python-json-logger writing with orjson: 5.8 us a line against 9.4 with the json module.
        return OrjsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES, timestamp=False)
    return logging.Formatter(TEXT_FORMAT)


def handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler writing `log_format` lines, secrets filtered out."""
    made = logging.StreamHandler(stream or sys.stderr)
    made.setFormatter(formatter(log_format))
    made.addFilter(RedactSecrets())
    made.exportctl = True  # type: ignore[attr-defined]  # configure() replaces it, gunicorn's too
    return made


def configure(config: Mapping[str, Any] | None = None) -> None:
    """Send the process's logs to stderr in the configured format (replacing what this did before)."""
    from service.config import load_config

    config = config or load_config()
    # Neither format shows the thread or the process (as the logging HOWTO's "Optimization" says,
    # a record then need not look them up): a few us off every request's line.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, "exportctl", False)]:
        root.removeHandler(previous)
    root.addHandler(handler(config["LOG_FORMAT"]))
    root.setLevel(config["LOG_LEVEL"])
    # Alembic announces each of its plugins at INFO whenever it loads (every worker checks the
    # schema at start): seven lines of noise per process. Its migrations still log theirs.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def gunicorn_logconfig(config: Mapping[str, Any]) -> dict:
    """gunicorn's `logconfig_dict`: its own lines in our format, and no access log (the request
    line replaces it, with the route, request id and actor)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": config["LOG_LEVEL"], "handlers": ["exportctl"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": ["discard"], "propagate": False},
        },
        "handlers": {
            "exportctl": {
                "()": "service.logs.handler",
                "log_format": config["LOG_FORMAT"],
                "stream": "ext://sys.stderr",
            },
            "discard": {"class": "logging.NullHandler"},
        },
        "formatters": {},
    }


# --- the request line -----------------------------------------------------------------------------

_requests = logging.getLogger(REQUEST_LOGGER)


def _start() -> None:
    g.request_started = time.perf_counter()


def request_started() -> float | None:
    """When this request began (`time.perf_counter`), for what measures its duration."""
    started: float | None = g.get("request_started")
    return started


def _one_line(text: str) -> str:
    """`text` with its control characters escaped, so it cannot start a log line of its own;
    secrets blanked first, while the separators they are recognised by are still there."""
    return redact(text).encode("unicode_escape").decode("ascii")


def _log_request(response: Response) -> Response:
    # Each name below is looked up once (`g` and `request` are proxies: every access costs).
    state, current = vars(g._get_current_object()), request._get_current_object()  # type: ignore[attr-defined]
    started = state.get("request_started")
    rule = current.url_rule
    principal = state.get("principal") or state.get("page_principal")
    request_line(
        current.method,
        current.path,
        rule.rule if rule is not None else None,
        response.status_code,
        time.perf_counter() - started if started is not None else None,
        state.get("request_id"),
        principal.name if principal is not None else None,
    )
    return response


def request_line(
    method: str,
    path: str,
    route: str | None,
    status: int,
    seconds: float | None,
    request_id: str | None,
    actor: str | None,
) -> None:
    """Log the line of one request (the app's, or a replayed response's: service.replay)."""
    _requests.info(
        "%s %s %s",
        method,
        path if path.isprintable() else _one_line(path),
        status,
        extra={
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1) if seconds is not None else None,
            "request_id": request_id,
            "actor": actor or "anonymous",
        },
    )


def new_request_id() -> str:
    """An id for a request that brought none (or none usable): 128 random bits, in hex."""
    return os.urandom(16).hex()


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_log_request)
