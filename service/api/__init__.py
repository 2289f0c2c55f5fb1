"""The HTTP API: flask-smorest blueprints, one per resource, and the OpenAPI document built from them."""

import http
import json
import re
from collections.abc import Callable, Hashable
from copy import deepcopy
from functools import wraps
from typing import Any

import marshmallow as ma
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask import Flask, g, request
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import prepare_response
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from service import clock, errors, logs
from service.api.paging import forget_next_page, link_next_page, next_page
from service.api.rendering import cached, data_version, respond, settled_document
from service.domain.errors import InvalidInput, NotFound
from service.replay import mark_replayable
from service.schemas import ProblemSchema, json_object

API_VERSION = "1.0.0"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class StrictParser(FlaskParser):
    """Unknown query parameters are errors: a mistyped `asof=` must not silently answer for today."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def load_querystring(self, req, schema):
        """The query string; a parameter that takes one value but is given twice is refused
        (which would be answered for?), as a JSON key given twice is."""
        proxy = super().load_querystring(req, schema)
        repeated = sorted(
            key for key in req.args if key not in proxy.multiple_keys and len(req.args.getlist(key)) > 1
        )
        if repeated:
            raise ma.ValidationError({key: ["Given more than once."] for key in repeated})
        return proxy

    def _raw_load_json(self, req):
        """The body as JSON, keeping track of keys given twice (the schema refuses them)."""
        if not is_json_request(req):
            return core.missing
        try:
            return json.loads(req.get_data(cache=True).decode(), object_pairs_hook=json_object)
        except UnicodeDecodeError as exc:
            self._handle_invalid_json_error(exc, req)
        except RecursionError as exc:  # well-formed, but nested deeper than the decoder follows
            abort(400, exc=exc, messages={"json": [errors.JSON_TOO_DEEP]})


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = StrictParser()

    def arguments(self, schema, *, location="json", **kwargs):
        """flask-smorest's arguments, with a fast path for an empty query string.

        Most lookups carry no query string; parsing one is then always the same
        result (the schema's defaults), so it is computed once instead of per
        request. A non-empty query string is parsed (and validated) as usual.
        """
        decorator = super().arguments(schema, location=location, **kwargs)
        if location != "query":
            return decorator
        as_kwargs = kwargs.get("as_kwargs", False)
        empty: list[dict] = []
        try:
            empty.append(schema.load({}))
        except ma.ValidationError:
            return decorator  # a parameter is required: an empty query string is a 422, parsed as any

        def fast_decorator(func):
            parsing = decorator(func)

            @wraps(parsing)
            def wrapper(*args, **view_args):
                if request.query_string:
                    return parsing(*args, **view_args)
                if as_kwargs:
                    return func(*args, **view_args, **empty[0])
                return func(*args, dict(empty[0]), **view_args)

            return wrapper

        return fast_decorator

    def response(self, status_code, schema=None, **kwargs):
        """flask-smorest's response; the schema instance it documents is also the one that
        renders a write's outcome (`writes.perform`), so no schema is declared twice."""
        instance = schema() if isinstance(schema, type) else schema
        if _is_paged(instance):
            kwargs.setdefault("headers", {"Link": LINK_HEADER})
        decorator = super().response(status_code, instance, **kwargs)

        def outer(func):
            @wraps(func)
            def with_schema(*args, **view_kwargs):
                g.response_schema = instance
                data = func(*args, **view_kwargs)
                following = next_page(data)
                if following is not None:
                    g.next_page = following
                return data

            return decorator(with_schema)

        return outer

    @staticmethod
    def conditional(func):
        """Document ETag / If-None-Match / 304."""
        func._apidoc = deepcopy(getattr(func, "_apidoc", {}))
        func._apidoc["etag"] = True
        return func

    def cached_response(
        self,
        schema: type[ma.Schema] | ma.Schema | None,
        *,
        etag_prefix: Callable[[Any], str] | None = None,
        serialize: Callable[[Any], bytes] | None = None,
        mimetype: str = "application/json",
        vary: Callable[[], Hashable] | None = None,
        settled: Callable[[Any], bool] | None = None,
    ):
        """A 200 documented with `schema` (and ETag / 304), rendered from the versioned cache.

        The view returns data, as for `response`; it runs only when the cache has no
        document for its arguments at the current data version and date (the date
        because answers default to today). `serialize` renders other media (Atom);
        `vary` adds what else the document depends on (such as the host it links to).

        `settled` says of a document that no later write can change it (a full page of the
        event feed: events are append-only and numbered in commit order). Such documents are
        kept under their arguments alone, and the view runs first, without reading the data
        version: a page at a cursor nobody asked for yet costs one query, not two round
        trips. A document that is not settled (the feed's tail) is served as read, uncached:
        cached under the version read after it, it could miss a write committed in between.
        """
        instance = schema() if isinstance(schema, type) else schema

        def decorator(func):
            @wraps(func)
            def render(*args, **kwargs):
                key = (
                    request.endpoint,
                    frozen(args[1:]),  # args[0] is the MethodView
                    frozen(kwargs),
                    clock.today(),
                    vary() if vary else None,
                )
                if settled is not None:
                    built, kept = settled_document(
                        key,
                        lambda: func(*args, **kwargs),
                        settled,
                        instance,
                        serialize=serialize,
                        etag_prefix=etag_prefix,
                    )
                    if kept:
                        mark_replayable(None, key[3])
                    return respond(built, mimetype)
                version = g.document_version = data_version()
                built = cached(
                    key,
                    lambda: func(*args, **kwargs),
                    instance,
                    version=version,
                    serialize=serialize,
                    etag_prefix=etag_prefix,
                )
                mark_replayable(version, key[3])
                return respond(built, mimetype)

            documented = self.response(200, instance)(render) if instance is not None else render
            return self.conditional(documented)

        return decorator

    def authorized(self, role, *, write: bool = False, json: bool = False):
        """The caller needs a key of `role` (documented as bearerAuth, 401/403).

        `write`: rate-limited per key (429). `json`: the body must be JSON (415),
        malformed JSON is a 400 and an oversized body a 413.
        """
        from service.api.writes import json_body, rate_limited
        from service.auth import requires

        codes = [401, 403] + ([429] if write else []) + ([400, 413, 415] if json else [])

        def decorator(func):
            if json:
                func = json_body(func)
            if write:
                func = rate_limited(func)
            func = requires(role)(func)
            func = self.doc(security=[{"bearerAuth": []}])(func)
            return self.problems(*codes)(func)

        return decorator

    def problems(self, *codes: int):
        """Document problem responses an operation can give."""

        def decorator(func):
            for code in codes:
                func = self.alt_response(code, response=http.HTTPStatus(code).name)(func)
            return func

        return decorator


LINK_HEADER = {
    "description": 'The next page (RFC 8288): `<url>; rel="next"`, absent on the last page.',
    "schema": {"type": "string"},
}


def _is_paged(schema: ma.Schema | None) -> bool:
    return schema is not None and ("next_cursor" in schema.fields or "has_more" in schema.fields)


class _Converter(OpenAPIConverter):
    """Schema-level JSON Schema keywords from a schema's `Meta.json_schema` (e.g. minProperties);
    a nullable enum as `anyOf: [enum, null]`, which client generators read as an optional enum
    (`type: [string, null]` with `null` among the values gives them one class per branch)."""

    def field2property(self, field):
        prop = super().field2property(field)
        kinds = prop.get("type")
        if "enum" in prop and isinstance(kinds, list) and "null" in kinds:
            [kind] = [k for k in kinds if k != "null"]
            values = [v for v in prop.pop("enum") if v is not None]
            del prop["type"]
            title = "".join(part.capitalize() for part in (field.data_key or field.name).split("_"))
            prop["anyOf"] = [{"type": kind, "enum": values, "title": title}, {"type": "null"}]
        return prop

    def schema2jsonschema(self, schema):
        jsonschema = super().schema2jsonschema(schema)
        jsonschema.update(getattr(getattr(schema, "Meta", None), "json_schema", {}))
        return jsonschema


class _MarshmallowPlugin(MarshmallowPlugin):
    Converter = _Converter


def frozen(value: Any) -> Hashable:
    """`value` (view arguments: dicts, lists, dates, cursors) in a hashable form for cache keys."""
    if isinstance(value, dict):
        return tuple(sorted(((key, frozen(item)) for key, item in value.items()), key=lambda pair: pair[0]))
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    return value


class Api(SmorestApi):
    """flask-smorest's Api, with RFC 9457 problems as the one error shape."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return errors.http_exception_problem(error)

    RESPONSE_HEADERS = {
        401: {"WWW-Authenticate": 'Bearer realm="exportctl" (with error="invalid_token" for a bad key)'},
        405: {"Allow": "The methods the resource supports"},
        429: {
            "Retry-After": "Seconds to wait before retrying",
            "RateLimit": 'What is left of the budget (IETF httpapi draft): `"writes";r=0;t=<seconds>`',
            "RateLimit-Policy": 'The budget (IETF httpapi draft): `"writes";q=<writes>;w=<seconds>`',
        },
        503: {"Retry-After": "Seconds to wait before retrying"},
    }

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            if status in self.RESPONSE_HEADERS:
                response["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in self.RESPONSE_HEADERS[status].items()
                }
            prepare_response(response, self.spec, errors.PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {
            "description": "Any other error, as a problem document",
            "schema": self.ERROR_SCHEMA,
        }
        prepare_response(response, self.spec, errors.PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


API_DESCRIPTION = """\
Countries' entries on strategic export-control lists (such as the US EAR country
groups D:1, D:3, D:5, E:1), each with its full, dated and sourced status history.

* Statuses: `listed`, `pending_removal`, `removed`, `pending_addition`; lookups may
  also answer `not_listed` (absent from a list whose membership is complete) or
  `unknown` (the data cannot tell). Unknown is never reported as not listed.
* `as_of=YYYY-MM-DD` answers for the status in force on a date;
  `known_at=<RFC 3339>` answers as the service would have at that moment.
* Every error is an RFC 9457 problem document (`application/problem+json`).
"""


def spec_config() -> dict:
    return {
        "API_TITLE": "exportctl",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.1.0",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": API_DESCRIPTION,
                "license": {"name": "MIT", "identifier": "MIT"},
            },
            # Reads are public by default, but a key that is sent must be valid (401 if not);
            # a deployment can require one (EXPORTCTL_READS_REQUIRE_KEY). Writes override this.
            "security": [{}, {"bearerAuth": []}],
        },
    }


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID")
    # It is echoed, and stored with what the request changes (shown to whoever reads the change):
    # one that carries a credential is replaced, as one that is not an id is.
    usable = incoming and REQUEST_ID.match(incoming) and not logs.holds_secret(incoming)
    g.request_id = incoming if usable else logs.new_request_id()


def _refuse_nul_characters() -> None:
    """No identifier or parameter of this API contains NUL; refuse it before it reaches a database."""
    if "\x00" in request.path:
        raise NotFound("No resource has a NUL character in its URL.")
    if b"%00" not in request.query_string and b"\x00" not in request.query_string:
        return
    bad = sorted({name for name, value in request.args.items(multi=True) if "\x00" in name + value})
    if bad:
        raise InvalidInput(
            "Invalid query parameter " + ", ".join(f"'{name}'" for name in bad) + ".",
            {name.replace("\x00", "\\0"): ["Must not contain NUL characters."] for name in bad},
        )


def _echo_request_id(response):
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return response


def init_app(app: Flask) -> Api:
    from service.api import (
        audit,
        changes,
        countries,
        events,
        freshness,
        lists,
        meta,
        proposals,
        receipts,
        snapshot,
        webhooks,
    )

    for key, value in spec_config().items():
        app.config.setdefault(key, value)
    api = Api(app, spec_kwargs={"marshmallow_plugin": _MarshmallowPlugin()})
    api.spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `exportctl keys create` (roles: reader, editor, admin). "
            "Writes need an editor key, list administration an admin key; reads are public "
            "unless the service is configured to require a reader key.",
        },
    )
    app.before_request(_assign_request_id)
    app.before_request(_refuse_nul_characters)
    app.after_request(_echo_request_id)
    app.before_request(forget_next_page)
    app.after_request(link_next_page)
    for module in (
        countries,
        lists,
        changes,
        freshness,
        snapshot,
        receipts,
        events,
        webhooks,
        proposals,
        audit,
        meta,
    ):
        api.register_blueprint(module.blp)
    events.init_app(app)
    return api
