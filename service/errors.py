"""Every failure becomes an RFC 9457 problem document (`application/problem+json`).

Validation errors are 422 everywhere and carry `errors`: a map from the
offending field (a dotted path for nested body fields) to its messages.
"""

import json as stdlib_json
import logging
import sys
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app, g, json, request
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from service.domain.errors import (
    ConcurrentUpdate,
    Conflict,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
    ProposalStale,
    TreatedAsAnother,
    UnknownCountry,
    UnknownList,
    VersionMismatch,
)
from service.importers.errors import UnrecognisedFormat
from service.webhooks.targets import TargetRejected

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"

# slug -> description, served at /problems/<slug> so problem types resolve.
PROBLEM_TYPES = {
    "validation-error": "A query parameter, header or body field is invalid; `errors` names each one.",
    "malformed-json": "The request body is not well-formed JSON.",
    "unsupported-media-type": "The request body must be sent as `application/json`.",
    "payload-too-large": "The request body is larger than the service accepts (64 KiB).",
    "unknown-country": "No country matches the reference; `suggestions` lists close matches.",
    "unknown-list": "No control list has this id; `known_lists` lists the ids there are.",
    "not-found": "Nothing exists at this URL.",
    "method-not-allowed": "The resource exists but does not support this method; see the Allow header.",
    "not-acceptable": "The service cannot produce a representation the client accepts.",
    "illegal-transition": "The status cannot follow the one in force at that date; `allowed` lists what can.",
    "treated-as-another-country": "On this list the country takes another's status (Hong Kong takes China's "
    "under the EAR); record the change on that country.",
    "concurrent-update": "Another writer changed the entry at the same time; read it again and retry.",
    "conflict": "The request conflicts with the current state of the resource.",
    "precondition-failed": "If-Match names an older version of the entry: it changed since you read it.",
    "unauthorized": "Credentials are missing or invalid; send `Authorization: Bearer <key>`.",
    "forbidden": "The API key's role does not allow this operation.",
    "idempotency-key-reused": "The Idempotency-Key was already used with a different request.",
    "rate-limited": "Too many requests; retry after the number of seconds in Retry-After.",
    "service-unavailable": "The service cannot reach its database right now; retry later.",
    "internal-error": "The service failed unexpectedly. The request id identifies it in the logs.",
    "webhook-url-rejected": "The webhook URL is not an allowed target (scheme, or a private address).",
    "http-error": "An HTTP error without a more specific type.",
    "malformed-request": "The request is not well-formed HTTP (its request line or a header).",
    "uri-too-long": "The request line is longer than the server reads (about 4 KB): shorten the query.",
    "headers-too-large": "A request header, or all of them, is larger than the server reads.",
    "proposal-stale": "The proposal was overtaken by a change recorded since it was made; it is now stale "
    "and nothing was recorded.",
    "unrecognised-document": "An importer met a document shape it does not recognise and refused it whole.",
}

# What the server (gunicorn) refuses before the app sees a request: service/gunicorn_worker.py.
_GUNICORN_SLUGS = {
    400: "malformed-request",
    403: "forbidden",
    414: "uri-too-long",
    431: "headers-too-large",
    500: "internal-error",
}


def gunicorn_problem_slug(status: int) -> str:
    return _GUNICORN_SLUGS.get(status, "http-error")


_SLUG_BY_STATUS = {
    400: "malformed-json",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "service-unavailable",
}


# RFC 3986's pchar besides unreserved characters (which quote() never encodes), and "/".
_PATH_SAFE = "/!$&'()*+,;=:@"


def instance_uri(path: str) -> str:
    """The request's path (as decoded) written back as a URI reference, RFC 9457's `instance`:
    spaces, non-ASCII, a lone %, ? and # percent-encoded."""
    return quote(path, safe=_PATH_SAFE)


def problem(
    status: int,
    slug: str | None = None,
    *,
    title: str | None = None,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
):
    """A problem+json response."""
    slug = slug or _SLUG_BY_STATUS.get(status, "http-error")
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request:
        body["instance"] = instance_uri(request.path)
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extensions.items() if v is not None})
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"sources.0.url": ["Not a valid URL."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            out.update(flatten_messages(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_body"] = list(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            out.update(flatten_messages(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "_body"] = [str(messages)]
    return out


JSON_TOO_DEEP = "The request body is JSON nested too deeply (arrays and objects within each other)."

_LOCATION_WORDS = {"query": "query parameter", "json": "body field", "headers": "header"}


def http_exception_problem(error: HTTPException):
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() not in ("content-type", "content-length")}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if data.get("headers"):
        headers.update(data["headers"])
    if status == 400 and isinstance(messages, dict) and "json" in messages:
        too_deep = JSON_TOO_DEEP in messages["json"]
        return problem(
            400,
            "malformed-json",
            title="Malformed JSON",
            detail=JSON_TOO_DEEP if too_deep else "The request body is not valid JSON.",
            headers=headers,
        )
    if status == 422 and isinstance(messages, dict):
        errors: dict[str, list[str]] = {}
        described: list[str] = []
        for location, location_messages in messages.items():
            flat = flatten_messages(location_messages)
            errors.update(flat)
            word = _LOCATION_WORDS.get(location, location)
            described.extend(f"{word} '{name}'" for name in flat)
        return problem(
            422,
            "validation-error",
            title="Invalid request",
            detail="Invalid " + ", ".join(described) + ".",
            errors=errors,
            headers=headers,
        )
    detail = data.get("message") or error.description
    extensions = data.get("extensions") or {}
    return problem(status, data.get("slug"), detail=detail, headers=headers, **extensions)


# --- errors raised at the HTTP edge (the domain knows nothing of these) -----------------


class EdgeError(Exception):
    """A refusal decided at the HTTP edge: credentials, limits, media type, size, availability."""

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


class Unauthorized(EdgeError):
    """No credentials, or credentials that are not valid (401 with WWW-Authenticate)."""


class Forbidden(EdgeError):
    """Valid credentials whose role does not allow the operation."""


class RateLimited(EdgeError):
    """The key's budget of writes is spent; Retry-After says for how long."""


class UnsupportedMediaType(EdgeError):
    pass


class PayloadTooLarge(EdgeError):
    pass


class IdempotencyKeyReused(EdgeError):
    pass


class ServiceUnavailable(EdgeError):
    """The database cannot be reached; retry later."""


@dataclass(frozen=True)
class ProblemKind:
    status: int
    slug: str
    title: str


# The one table from an error's class to its problem: the nearest class in the MRO decides.
PROBLEM_KINDS: dict[type[Exception], ProblemKind] = {
    DomainError: ProblemKind(400, "http-error", "Bad request"),
    NotFound: ProblemKind(404, "not-found", "Not found"),
    UnknownCountry: ProblemKind(404, "unknown-country", "Unknown country"),
    UnknownList: ProblemKind(404, "unknown-list", "Unknown list"),
    InvalidInput: ProblemKind(422, "validation-error", "Invalid request"),
    IllegalTransition: ProblemKind(409, "illegal-transition", "Illegal status transition"),
    TreatedAsAnother: ProblemKind(
        409, "treated-as-another-country", "Country treated as another on this list"
    ),
    Conflict: ProblemKind(409, "conflict", "Conflict"),
    ConcurrentUpdate: ProblemKind(409, "concurrent-update", "Concurrent update"),
    VersionMismatch: ProblemKind(412, "precondition-failed", "Precondition failed"),
    Unauthorized: ProblemKind(401, "unauthorized", "Unauthorized"),
    Forbidden: ProblemKind(403, "forbidden", "Forbidden"),
    RateLimited: ProblemKind(429, "rate-limited", "Too many requests"),
    UnsupportedMediaType: ProblemKind(415, "unsupported-media-type", "Unsupported media type"),
    PayloadTooLarge: ProblemKind(413, "payload-too-large", "Payload too large"),
    IdempotencyKeyReused: ProblemKind(422, "idempotency-key-reused", "Idempotency-Key reused"),
    ServiceUnavailable: ProblemKind(503, "service-unavailable", "Service unavailable"),
    TargetRejected: ProblemKind(422, "webhook-url-rejected", "Webhook URL rejected"),
    UnrecognisedFormat: ProblemKind(422, "unrecognised-document", "Unrecognised document"),
    ProposalStale: ProblemKind(409, "proposal-stale", "Proposal overtaken"),
}


def problem_kind(error: Exception) -> ProblemKind:
    for cls in type(error).__mro__:
        if cls in PROBLEM_KINDS:
            return PROBLEM_KINDS[cls]
    raise LookupError(f"no problem kind for {type(error).__name__}")


def known_problem(error: DomainError | EdgeError):
    kind = problem_kind(error)
    headers = getattr(error, "headers", None)
    return problem(
        kind.status, kind.slug, title=kind.title, detail=error.detail, headers=headers, **error.extensions
    )


RETRY_AFTER_UNAVAILABLE = "5"


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached (as opposed to a bug or bad data).

    Drivers raise their own classes, sometimes unwrapped (from a connect hook, say), and
    SQLAlchemy wraps others; a connection lost mid-statement is an InterfaceError in psycopg.
    """
    if isinstance(error, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    dbapi_classes = tuple(
        getattr(module, name)
        for module in _DBAPI_MODULES
        for name in ("OperationalError", "InterfaceError")
        if hasattr(module, name)
    )
    return isinstance(error, dbapi_classes)


def _dbapi_modules() -> list:
    import sqlite3

    modules: list = [sqlite3]
    try:
        import psycopg

        modules.append(psycopg)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return modules


_DBAPI_MODULES = _dbapi_modules()


def unavailable_problem(error: BaseException):
    log.warning("database unavailable: %s: %s", error.__class__.__name__, error)
    return problem(
        503,
        "service-unavailable",
        title="Service unavailable",
        detail="The database is unreachable; retry later.",
        headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
        database="unreachable",
    )


def data_problem(error: DataError):
    """Input the database refused as data (out of range, bad encoding): the request's fault, never a 500."""
    log.warning("database refused input on %s %s: %s", request.method, request.path, error.orig)
    return problem(
        422, "validation-error", title="Invalid request", detail="A value in the request is not acceptable."
    )


def unexpected_problem(error: Exception):
    if isinstance(error, HTTPException):
        return http_exception_problem(error)
    if database_unavailable(error):
        return unavailable_problem(error)
    log.error(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.path,
        g.get("request_id"),
        exc_info=error,
    )
    return problem(500, "internal-error", detail=InternalServerError.description)


class ProblemGuard:
    """WSGI middleware: whatever escapes the app (a teardown hook, a broken after-request hook)
    becomes a problem+json 500, never the server's HTML page."""

    BODY = stdlib_json.dumps(
        {
            "type": "/problems/internal-error",
            "title": "Internal Server Error",
            "status": 500,
            "detail": InternalServerError.description,
        }
    ).encode()

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        started = []

        def tracking_start_response(status, headers, exc_info=None):
            started.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, tracking_start_response)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            log.error(
                "error escaped the app on %s %s",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                exc_info=exc,
            )
            if started:  # too late to change the status line: let the server cut the connection
                raise
            unavailable = database_unavailable(exc)
            status = "503 Service Unavailable" if unavailable else "500 Internal Server Error"
            body = self.BODY
            headers = [("Content-Type", PROBLEM_MIMETYPE), ("Content-Length", str(len(body)))]
            if unavailable:
                body = stdlib_json.dumps(
                    {
                        "type": "/problems/service-unavailable",
                        "title": "Service unavailable",
                        "status": 503,
                        "detail": "The database is unreachable; retry later.",
                    }
                ).encode()
                headers = [
                    ("Content-Type", PROBLEM_MIMETYPE),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", RETRY_AFTER_UNAVAILABLE),
                ]
            start_response(status, headers, sys.exc_info())
            return [body]


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, known_problem)
    app.register_error_handler(EdgeError, known_problem)
    app.register_error_handler(DataError, data_problem)
    app.register_error_handler(Exception, unexpected_problem)
    app.wsgi_app = ProblemGuard(app.wsgi_app)  # type: ignore[method-assign]
    # HTTPException is registered by the Api (service.api), which calls
    # http_exception_problem, so flask-smorest documents the same shape.
