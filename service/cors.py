"""Cross-origin access for browser apps (flask-cors): reads from the configured origins,
writes only from origins configured for them.

flask-cors decides per path; exportctl's reads and writes share paths (`GET` and
`POST /v1/lists`), so the choice between the two policies is made per request here,
and flask-cors computes and sets the headers of the chosen one.
"""

from flask import Flask, current_app, request
from flask_cors.core import get_cors_options, set_cors_headers

PATHS = ("/v1/", "/openapi.yaml", "/healthz", "/problems/")
READ_METHODS = ["GET", "HEAD"]
WRITE_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
READ_HEADERS = ["Authorization", "If-None-Match", "X-Request-ID"]
WRITE_HEADERS = [*READ_HEADERS, "Content-Type", "Idempotency-Key", "If-Match"]
# What a browser app may read of a response besides the CORS-safelisted headers.
EXPOSED = [
    "ETag",
    "Link",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-Request-ID",
    "Idempotent-Replayed",
]


def _options(app: Flask, origins: list[str], methods: list[str], headers: list[str]):
    return get_cors_options(
        app,
        {
            "origins": origins,
            "methods": methods,
            "allow_headers": headers,
            "expose_headers": EXPOSED,
            "max_age": 600,
            "supports_credentials": False,  # keys travel in Authorization, never in cookies
            "vary_header": True,
            "send_wildcard": origins == ["*"],  # '*' itself, so shared caches keep one copy
        },
    )


def init_app(app: Flask) -> None:
    policies = {}
    if app.config["CORS_READ_ORIGINS"]:
        policies["read"] = _options(app, app.config["CORS_READ_ORIGINS"], READ_METHODS, READ_HEADERS)
    if app.config["CORS_WRITE_ORIGINS"]:
        policies["write"] = _options(app, app.config["CORS_WRITE_ORIGINS"], WRITE_METHODS, WRITE_HEADERS)
    app.extensions["exportctl.cors"] = policies
    if policies:
        app.after_request(_allow_cross_origin)


def _is_read() -> bool:
    if request.method == "OPTIONS":  # a preflight asks for the method it is about to use
        return request.headers.get("Access-Control-Request-Method", "GET").upper() in READ_METHODS
    return request.method in READ_METHODS


def _allow_cross_origin(response):
    if "Origin" not in request.headers or not request.path.startswith(PATHS):
        return response
    policy = current_app.extensions["exportctl.cors"].get("read" if _is_read() else "write")
    if policy is None:
        return response
    return set_cors_headers(response, policy)
