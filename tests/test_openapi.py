"""The spec is the contract: openapi.yaml is what the code generates, and the app keeps to it."""

from pathlib import Path

import hypothesis
import pytest
import schemathesis
import yaml
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api.meta import spec_yaml

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


def test_committed_openapi_yaml_is_what_the_code_generates(app):
    with app.app_context():
        generated = spec_yaml()

    assert generated == SPEC_PATH.read_text(encoding="utf-8"), (
        "openapi.yaml is stale: run `make openapi` and commit it"
    )


def test_openapi_yaml_is_a_valid_openapi_3_1_document():
    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))

    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_service_serves_its_spec(client):
    response = client.get("/openapi.yaml")

    assert response.status_code == 200
    assert response.content_type.startswith("application/yaml")
    assert response.get_data(as_text=True) == SPEC_PATH.read_text(encoding="utf-8")


def test_the_spec_is_also_served_as_json(client):
    """Generators and gateways that fetch /openapi.json find the same document."""
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ["/openapi.yaml", "/openapi.json"])
def test_the_spec_answers_its_etag_with_304(client, path):
    etag = client.get(path).headers["ETag"]

    again = client.get(path, headers={"If-None-Match": etag})

    assert again.status_code == 304
    assert again.data == b""
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/openapi.json" if path.endswith("yaml") else "/openapi.yaml").headers["ETag"] != etag


def test_the_docs_page_lists_every_operation(client):
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    page = response.get_data(as_text=True)
    for path in yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))["paths"]:
        assert f"<code>{path}</code>" in page


def test_problem_types_resolve(client):
    problem = client.get("/v1/countries/XX").get_json()

    assert client.get(problem["type"]).status_code == 200
    assert client.get("/problems/no-such-problem").status_code == 404


def test_healthz_reports_the_database(client):
    health = client.get("/healthz").get_json()

    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["event_sequence"] > 0


schema = schemathesis.openapi.from_path(str(SPEC_PATH))
# A body over the size limit is refused with 413 before it is validated: a rejection too.
schema.config.checks.negative_data_rejection.expected_statuses.append("413")


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_keeps_to_the_spec(case, app, admin):
    """Property-based: generated requests never get a 5xx or a response outside the spec.

    Schema-valid input may still be refused for reasons a schema cannot carry
    (an opaque cursor the API never issued, an illegal transition), so the
    "positive data must be accepted" check is off; every other check is on.
    """
    case.operation.schema.app = app  # checks that re-send a request (e.g. without auth) reach it too
    # Identity bodies: schemathesis asks for gzip by default and reads what the WSGI app returns as is.
    headers = {**admin, "Accept-Encoding": "identity"}
    case.call_and_validate(app=app, headers=headers, excluded_checks=[positive_data_acceptance])
