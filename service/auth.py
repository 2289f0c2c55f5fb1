"""Bearer API keys on requests: who is calling, and whether their role allows it.

Reads are public unless READS_REQUIRE_KEY is set (a key that is sent must be
valid, though); writes need an editor key,
list administration an admin key. Missing or bad credentials: 401 with
WWW-Authenticate; a role too low: 403.
"""

from functools import wraps

from flask import Flask, current_app, g, request

from service import db
from service.domain.keys import Principal, authenticate
from service.errors import Forbidden, Unauthorized
from service.vocabulary import Role

REALM = 'Bearer realm="exportctl"'


def current_principal() -> Principal | None:
    """The request's principal (None if no credentials were sent). Raises nothing."""
    if "principal" not in g:
        g.principal = None
        g.bad_credentials = False
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, secret = header.partition(" ")
            principal = None
            if scheme.lower() == "bearer" and secret.strip():
                principal = authenticate(db.session(), secret.strip())
            g.principal = principal
            g.bad_credentials = principal is None
    return g.principal


def _unauthorized() -> Unauthorized:
    if g.get("bad_credentials"):
        return Unauthorized(
            "The API key is not valid (unknown, revoked or malformed).",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    return Unauthorized(
        "This operation needs an API key: send `Authorization: Bearer <key>`.",
        headers={"WWW-Authenticate": REALM},
    )


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def check(role: Role) -> Principal:
    """The principal, if the request may proceed with `role`; raises Unauthorized or Forbidden."""
    principal = current_principal()
    if principal is None:
        raise _unauthorized()
    if not principal.may(role):
        raise Forbidden(
            f"This operation needs {_article(role.label)} key; "
            f"{principal.name!r} is {_article(principal.role.label)} key."
        )
    return principal


def requires(role: Role):
    """View decorator: the caller needs at least `role`."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            check(role)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _guard_reads():
    """Reads need a reader key when configured; a bad key is refused even where none is needed,
    so a mistyped key shows up on the first read, not the first write."""
    if request.method not in ("GET", "HEAD") or request.endpoint in _PUBLIC_ENDPOINTS:
        return
    if request.blueprint in _SELF_GUARDED_BLUEPRINTS:
        return
    if current_app.config["READS_REQUIRE_KEY"]:
        check(Role.READER)
    elif "Authorization" in request.headers and current_principal() is None:
        raise _unauthorized()


# Always public: health checks and the API's own description. /metrics checks its own token
# (service.metrics), which is not an API key.
_PUBLIC_ENDPOINTS = {
    "meta.healthz",
    "meta.openapi_yaml",
    "meta.docs",
    "meta.problem_type",
    "receipts.Jwks",  # public keys, for anyone to verify a receipt
    "static",
    "metrics",
}
# The analysts' pages check a sign-in session themselves (service.pages); Swagger UI is public like /docs.
_SELF_GUARDED_BLUEPRINTS = {"pages", "swagger_ui"}


def _forget_principal(_exc: BaseException | None) -> None:
    g.pop("principal", None)
    g.pop("bad_credentials", None)


def init_app(app: Flask) -> None:
    app.teardown_request(_forget_principal)
    app.before_request(_guard_reads)
