"""Service endpoints: health, the OpenAPI document, its browsable docs, problem types."""

import json

import yaml
from flask import current_app, render_template, request

from service import db
from service.api import Blueprint
from service.api.rendering import etag_digest
from service.domain.errors import NotFound
from service.domain.events import current_sequence
from service.errors import PROBLEM_TYPES
from service.schemas import HealthSchema

blp = Blueprint("meta", __name__, description="Health, the OpenAPI document and its docs.")


@blp.route("/healthz")
@blp.response(200, HealthSchema)
@blp.problems(503)
@blp.doc(operationId="get_health")
def healthz():
    """Whether the service can reach its database."""
    with db.database().engine.connect() as connection:  # unreachable: 503 (service/errors.py)
        sequence = current_sequence(connection)
    return {"status": "ok", "database": "ok", "event_sequence": sequence}


SPEC_KEY_ORDER = ("openapi", "info", "servers", "security", "tags", "paths", "components")


def spec_dict() -> dict:
    spec = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return {key: spec[key] for key in SPEC_KEY_ORDER if key in spec} | spec


class _SpecDumper(yaml.SafeDumper):
    """Multi-line text as YAML block scalars, so openapi.yaml reads well."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _represent_str)


def spec_yaml() -> str:
    """openapi.yaml exactly as committed: tests compare the two, so they cannot drift."""
    return yaml.dump(spec_dict(), Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=100)


def _spec_doc(summary: str, mimetype: str, operation_id: str) -> dict:
    """How a form of the spec is documented (in the spec itself)."""
    schema = {"type": "object", "description": "OpenAPI 3.1"}
    return {
        "summary": summary,
        "operationId": operation_id,
        "responses": {"200": {"description": "OK", "content": {mimetype: {"schema": schema}}}},
    }


@blp.route("/openapi.yaml")
@blp.doc(**_spec_doc("The OpenAPI 3.1 document", "application/yaml", "get_openapi_document"))
def openapi_yaml():
    """The OpenAPI 3.1 document describing this API."""
    return _spec_response("yaml", spec_yaml, "application/yaml")


@blp.route("/openapi.json")
@blp.doc(**_spec_doc("The OpenAPI 3.1 document, as JSON", "application/json", "get_openapi_document_json"))
def openapi_json():
    """The same document as `/openapi.yaml`, as JSON (where client generators and gateways look)."""
    return _spec_response("json", lambda: json.dumps(spec_dict()), "application/json")


def _spec_response(form: str, write, mimetype: str):
    """The spec in one form, written once per process, with a strong ETag (304 to If-None-Match):
    it changes only when the service does."""
    key = f"exportctl.openapi_{form}"
    text = current_app.extensions.get(key)
    if text is None:
        text = current_app.extensions[key] = write()
    response = current_app.response_class(text, mimetype=mimetype)
    response.set_etag(etag_digest(response.get_data()))
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@blp.route("/docs")
@blp.doc(
    summary="Browsable API documentation",
    responses={"200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}},
)
@blp.doc(operationId="get_docs")
def docs():
    """Human-readable documentation of every operation, rendered from the OpenAPI document."""
    return render_template("docs.html", spec=spec_dict(), problems=PROBLEM_TYPES)


SLUG_PARAMETER = {"in": "path", "name": "slug", "required": True, "schema": {"type": "string"}}


@blp.route("/problems/<slug>", parameters=[SLUG_PARAMETER])
@blp.doc(
    summary="A problem type",
    responses={"200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}},
)
@blp.problems(404)
@blp.doc(operationId="get_problem_type")
def problem_type(slug):
    """What a problem `type` means."""
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"No problem type {slug!r}.")
    return render_template("problem.html", slug=slug, description=PROBLEM_TYPES[slug])
