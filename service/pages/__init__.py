"""Pages for analysts: server-rendered HTML over the same domain functions as the API.

A blueprint (`pages`) of Jinja templates, Swagger UI served from the
flask-swagger-ui package's own assets, a sign-in session for deployments whose
reads need a key, and HTML error pages for browsers outside /v1/.
"""

import logging
import secrets

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_swagger_ui import get_swaggerui_blueprint
from werkzeug.exceptions import HTTPException

from service import errors

log = logging.getLogger(__name__)

SWAGGER_UI_PATH = "/docs/swagger"


def _not_found(error: HTTPException):
    """A browser asking for a page that does not exist gets a page; API clients keep problem+json."""
    from service.pages.views import error_page

    prefers_html = (
        request.accept_mimetypes.best_match([errors.PROBLEM_MIMETYPE, "application/json", "text/html"])
        == "text/html"
    )
    if prefers_html and not request.path.startswith("/v1/"):
        return error_page(404, "Page not found", f"Nothing is served at {request.path}.")
    return errors.http_exception_problem(error)


class _Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building a signing serializer for a request that
    carries no session cookie (every API call): it would only find no cookie to read. A request
    with one, and saving a session, are Flask's own."""

    def open_session(self, app, request):
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    from service.pages import views

    app.session_interface = _Sessions()
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        if app.config["READS_REQUIRE_KEY"] and not app.config.get("TESTING"):
            log.warning(
                "EXPORTCTL_SECRET_KEY is not set: page sign-ins last only as long as this process "
                "and are not shared between workers"
            )
    app.config["SESSION_COOKIE_NAME"] = "exportctl_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.register_blueprint(views.bp)
    app.register_blueprint(
        get_swaggerui_blueprint(
            SWAGGER_UI_PATH,
            "/openapi.yaml",
            config={"app_name": "exportctl API — Swagger UI", "deepLinking": True},
        )
    )
    app.register_error_handler(404, _not_found)
