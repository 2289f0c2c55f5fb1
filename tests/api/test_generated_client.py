"""A Python client generated from the served OpenAPI document (openapi-python-client) works against a
live server: a dated lookup, a paged collection, a change recorded with a key, errors as problems.

The generator runs during the test run, so a spec change that breaks or uglifies the client fails here:
any warning of the generator is a failure (a spec bug), as is an operation without an operationId.
"""

import datetime
import importlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import create_key
from tests.live import serving

CONFIG = Path(__file__).with_name("openapi-python-client.yaml")
SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"
PACKAGE = "exportctl_client"


def generate(spec_text: str, directory: Path):
    """Generate the client package into `directory` and import it."""
    spec = directory / "openapi.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(directory / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(CONFIG),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(directory)},  # its ruff post-hooks
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    assert "Skipping" not in output, output
    sys.path.insert(0, str(directory))
    return importlib.import_module(PACKAGE)


@pytest.fixture
def live(app, caplog):
    caplog.set_level(logging.INFO)  # the live server's own request lines (werkzeug) are captured too
    with serving(app) as base:
        yield base


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The client of the committed openapi.yaml (tests/test_openapi.py proves it is what the service
    serves), generated once for both backends."""
    directory = tmp_path_factory.mktemp("client")
    package = generate(SPEC.read_text(encoding="utf-8"), directory)
    yield package
    sys.path.remove(str(directory))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def utc_z(document):
    """The document with its UTC moments written as the API writes them (`Z`, not `+00:00`)."""
    text = json.dumps(document)
    return json.loads(re.sub(r'(T[0-9:.]+)\+00:00"', r'\1Z"', text))


def api(name: str):
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def test_every_operation_has_an_operation_id(client):
    spec = yaml.safe_load(client.get("/openapi.yaml").get_data(as_text=True))
    ids = [
        op.get("operationId") for path in spec["paths"].values() for op in path.values() if "responses" in op
    ]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_a_generated_client_works_against_a_live_server(app, client, live, generated, caplog):
    models = importlib.import_module(f"{PACKAGE}.models")
    anonymous = generated.Client(base_url=live, raise_on_unexpected_status=True)

    # A lookup as of a date: the same document as the API's JSON.
    lookup = api("countries.get_country").sync_detailed(
        "VN", client=anonymous, as_of=datetime.date(2025, 6, 1)
    )
    assert lookup.status_code == 200
    status = lookup.parsed
    assert isinstance(status, models.CountryStatus)
    assert status.as_of == datetime.date(2025, 6, 1)
    assert status.country.alpha_2 == "VN"
    assert utc_z(status.to_dict()) == client.get("/v1/countries/VN?as_of=2025-06-01").get_json()

    # A paged collection, followed to its end through next_cursor (and the Link header).
    codes: list[str] = []
    cursor = generated.types.UNSET
    pages = 0
    while True:
        page = api("countries.list_countries").sync_detailed(client=anonymous, limit=50, cursor=cursor)
        assert page.status_code == 200
        codes += [item.country.alpha_2 for item in page.parsed.items]
        pages += 1
        if page.parsed.next_cursor is None:
            assert "link" not in {k.lower() for k in page.headers}
            break
        assert 'rel="next"' in page.headers["Link"]
        cursor = page.parsed.next_cursor
    assert pages > 1
    assert (
        len(codes) == len(set(codes)) == client.get("/v1/countries?limit=1000").get_json()["items"].__len__()
    )

    # A change recorded with an editor key (Authorization: Bearer).
    key = create_key(app, "client-editor", "editor")
    editor = generated.AuthenticatedClient(base_url=live, token=key)
    body = models.ChangeCreate(
        status=models.ChangeCreateStatus.REMOVED,
        effective_on=datetime.date(2026, 11, 20),
        note="Recorded by the generated client.",
        sources=[
            models.Source(
                title="Final rule",
                publisher="Bureau of Industry and Security",
                url="https://www.federalregister.gov/d/2026-99999",
                published_on=datetime.date(2026, 11, 20),
            )
        ],
    )
    created = api("lists.record_change").sync_detailed("us-ear-d1", "VN", client=editor, body=body)
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, models.ChangeCreated)
    assert created.parsed.entry.status == models.EntryStateStatus.REMOVED
    assert created.parsed.change.actor == "client-editor"
    entry = client.get("/v1/lists/us-ear-d1/entries/VN").get_json()
    assert entry["status"] == "removed"

    # Errors are problem documents.
    missing = api("countries.get_country").sync_detailed("XX-nonsense", client=anonymous)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Problem)
    assert missing.parsed.status == 404
    assert missing.parsed.type_.endswith("/not-found") or missing.parsed.type_
    assert missing.parsed.title
    refused = api("lists.record_change").sync_detailed(
        "us-ear-d1",
        "VN",
        client=generated.AuthenticatedClient(base_url=live, token="exk_not-a-key"),
        body=body,
    )
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.status == 401

    # The live server's request lines never carry the key.
    assert key not in caplog.text
