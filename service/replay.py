"""Whole responses to plain GETs of cached documents, replayed without running the request through Flask.

A cached document (`Blueprint.cached_response`, the analysts' pages) is found in a few
microseconds, but the request around it costs about three times that again: Flask's contexts,
a dozen request hooks, the schema and ETag wrappers. This WSGI middleware keeps the response
such a request got (status, headers, bytes) and answers the same request again from it, as
long as what the document was built from still holds:

- the same data version (read per request, as the document cache does: a write anywhere is seen
  by the next request in every process) and the same day (answers default to today);
- the same request (kept from its second time on): path, query string and every header the
  app might read. Headers that no code here reads (the user agent, a proxy's X-Forwarded-*)
  are left out of the key; requests that carry a credential, a cookie, an Origin, their own
  X-Request-ID, a conditional or a body are always answered by the app.

A replayed response is the app's response byte for byte, with a new X-Request-ID; it is logged
(the same request line) and counted (the same metrics) as the app does. Only 200s rendered from
the document cache (`mark_replayable`) are kept, never a response that sets a cookie; the responses share the
document cache's byte budget (EXPORTCTL_CACHE_MAX_BYTES).
"""

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, request

from service import clock, logs

# What `Blueprint.cached_response` leaves in the WSGI environ when its response may be replayed.
MARK = "exportctl.replayable"

# Request headers (as WSGI names them) that no code in this service reads: left out of the key.
IGNORED = frozenset(
    {
        "HTTP_USER_AGENT",
        "HTTP_CONNECTION",
        "HTTP_KEEP_ALIVE",
        "HTTP_ACCEPT_LANGUAGE",
        "HTTP_CACHE_CONTROL",
        "HTTP_PRAGMA",
        "HTTP_REFERER",
        "HTTP_DNT",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
        "HTTP_PRIORITY",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_FORWARDED_PORT",
        "HTTP_X_REAL_IP",
        "HTTP_SEC_FETCH_SITE",  # a browser's fetch metadata and client hints
        "HTTP_SEC_FETCH_MODE",
        "HTTP_SEC_FETCH_USER",
        "HTTP_SEC_FETCH_DEST",
        "HTTP_SEC_CH_UA",
        "HTTP_SEC_CH_UA_MOBILE",
        "HTTP_SEC_CH_UA_PLATFORM",
        "HTTP_TRACEPARENT",  # tracing (W3C, AWS, Google Cloud), different at every request
        "HTTP_TRACESTATE",
        "HTTP_X_AMZN_TRACE_ID",
        "HTTP_X_CLOUD_TRACE_CONTEXT",
        "HTTP_B3",  # Zipkin B3, single header and multi
        "HTTP_X_B3_TRACEID",
        "HTTP_X_B3_SPANID",
        "HTTP_X_B3_PARENTSPANID",
        "HTTP_X_B3_SAMPLED",
        "HTTP_X_B3_FLAGS",
        "HTTP_UBER_TRACE_ID",  # Jaeger
        "HTTP_SENTRY_TRACE",  # Sentry, with its W3C baggage
        "HTTP_BAGGAGE",
        "HTTP_X_DATADOG_TRACE_ID",
        "HTTP_X_DATADOG_PARENT_ID",
        "HTTP_X_DATADOG_SAMPLING_PRIORITY",
        "HTTP_X_DATADOG_ORIGIN",
        "HTTP_X_REQUEST_START",  # a proxy's timestamp (Heroku, New Relic)
        "HTTP_X_QUEUE_START",
    }
)
# Request headers that make the response the app's to give every time: who is asking
# (credentials, cookies, an Origin for CORS), an id to echo, a condition, a body.
PASSED = frozenset(
    {
        "HTTP_AUTHORIZATION",
        "HTTP_COOKIE",
        "HTTP_ORIGIN",
        "HTTP_X_REQUEST_ID",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_RANGE",
        "HTTP_TRANSFER_ENCODING",
    }
)
# The parts of the environ besides headers that the app's answer may depend on.
KEYED_ENVIRON = ("PATH_INFO", "QUERY_STRING", "SCRIPT_NAME", "wsgi.url_scheme", "SERVER_NAME", "SERVER_PORT")
# Keys remembered as asked once (a hash each: about 100 bytes).
SEEN_MAX = 16_384
# Per entry, besides its body and its key's text: the header list and the cache's bookkeeping, roughly.
ENTRY_OVERHEAD = 1500
PER_HEADER = 150  # a (name, value) tuple of two strings, besides their text


@dataclass(frozen=True, slots=True)
class Replayable:
    """What the app says of a response it rendered from the document cache."""

    version: int | None  # the data version it was built at; None: settled, no write can change it
    today: date
    route: str
    path: str  # as the app decoded it, for the request line


@dataclass(frozen=True, slots=True)
class Kept:
    mark: Replayable  # what it was built from, and what its request line says
    headers: list[tuple[str, str]]
    body: bytes
    key_size: int  # what its key holds: a client chooses its headers, so they are paid for too

    @property
    def size(self) -> int:
        return len(self.body) + self.key_size + ENTRY_OVERHEAD


def request_key(environ: dict) -> tuple | None:
    """The request's key, or None when the app must answer it (not a plain GET)."""
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("CONTENT_LENGTH") not in (None, "", "0"):
        return None
    headers = []
    for name, value in environ.items():
        if name.startswith("HTTP_") and name not in IGNORED:
            if name in PASSED:
                return None
            headers.append((name, value))
    headers.sort()
    return (*(environ.get(name) for name in KEYED_ENVIRON), *headers)


def key_size(key: tuple) -> int:
    """Bytes a request key holds, roughly: its strings, and a tuple and two strings per header."""
    return sum(
        len(part[0]) + len(part[1]) + PER_HEADER if isinstance(part, tuple) else len(part or "")
        for part in key
    )


class ResponseReplay:
    """WSGI middleware around the app's own `wsgi_app` (see the module's docstring)."""

    def __init__(self, app: Flask, wsgi_app: Callable, cache: Any, data_version: Callable[[], int]):
        self.app = app
        self.wsgi_app = wsgi_app
        self.cache = cache  # a rendering.DocumentCache: bounded in bytes, thread-safe
        self.data_version = data_version
        self._seen: dict[int, None] = {}  # hashes of keys asked once, oldest first
        self._seen_lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        key = None if self.app.config["READS_REQUIRE_KEY"] else request_key(environ)
        if key is None:
            return self.wsgi_app(environ, start_response)
        kept: Kept | None = self.cache.get(key)
        if kept is not None and self._holds(kept):
            return self._replay(kept, environ, start_response, started)
        response = self.wsgi_app(environ, self._capture(environ, start_response))
        mark: Replayable | None = environ.get(MARK)
        if mark is None or environ["exportctl.replay.status"] != "200 OK":
            return response
        if kept is None and not self._seen_before(key):
            return response
        body = self._drain(response)
        headers = environ["exportctl.replay.headers"]
        if not any(name.lower() == "set-cookie" for name, _ in headers):
            kept_headers = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
            kept = Kept(mark, kept_headers, body, key_size(key))
            self.cache.put(key, kept)
        return [body]

    def _seen_before(self, key: Hashable) -> bool:
        """Whether `key` was asked before (and remember that it now was). A response is kept from
        its second request on, as nginx's proxy_cache_min_uses 2: a request asked once (a lookup
        at a random date, a crawler's walk) costs nothing to keep and evicts nothing kept."""
        digest = hash(key)
        with self._seen_lock:
            if digest in self._seen:
                return True
            self._seen[digest] = None
            if len(self._seen) > SEEN_MAX:
                del self._seen[next(iter(self._seen))]  # the oldest
            return False

    def _holds(self, kept: Kept) -> bool:
        """Whether what the response was built from still holds: the day, and the data version."""
        mark = kept.mark
        if mark.today != clock.today():
            return False
        if mark.version is None:
            return True
        try:
            return mark.version == self.data_version()
        except Exception:  # noqa: BLE001 - the app answers, and reports the database as it does
            return False

    @staticmethod
    def _capture(environ: dict, start_response: Callable) -> Callable:
        def capturing(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            environ["exportctl.replay.status"] = status
            environ["exportctl.replay.headers"] = headers
            return start_response(status, headers, exc_info)

        return capturing

    @staticmethod
    def _drain(response: Iterable[bytes]) -> bytes:
        try:
            return b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()

    def _replay(self, kept: Kept, environ: dict, start_response: Callable, started: float) -> list[bytes]:
        request_id = logs.new_request_id()
        start_response("200 OK", [*kept.headers, ("X-Request-ID", request_id)])
        seconds = time.perf_counter() - started
        logs.request_line("GET", kept.mark.path, kept.mark.route, 200, seconds, request_id, None)
        collected = self.app.extensions.get("exportctl.metrics")
        if collected is not None:
            collected.observe_cache_lookup(hit=True)
            collected.observe_request("GET", kept.mark.route, 200, seconds)
        return [kept.body]


def mark_replayable(version: int | None, today: date) -> None:
    """Said by a view whose 200 comes from the document cache at `version` (None: settled, no write
    changes it) and whose answer depends on nothing but the request and `today`: its response
    may be replayed to the same request while those hold."""
    rule = request.url_rule
    if rule is not None:
        request.environ[MARK] = Replayable(version, today, rule.rule, request.path)


def init_app(app: Flask) -> None:
    from service.api import rendering

    replay = ResponseReplay(
        app,
        app.wsgi_app,
        rendering.DocumentCache(app.config["CACHE_MAX_BYTES"] // 4),
        lambda: app.extensions["exportctl.version"].read(),
    )
    app.extensions["exportctl.replay"] = replay
    app.wsgi_app = replay  # type: ignore[method-assign]
