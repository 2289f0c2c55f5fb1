"""Logs: one JSON line per request and per worker claim and attempt; no secret in any line."""

import io
import json
import logging

import pytest

from service import logs
from service.config import load_config
from service.webhooks.worker import DeliveryWorker
from tests.conftest import a_change, create_key
from tests.webhooks.conftest import _receiver_server, receiver  # noqa: F401 - fixtures

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


class _EveryField(logging.Formatter):
    """The message, the traceback and every attribute of the record (the structured fields)."""

    def format(self, record):
        return f"{super().format(record)} {vars(record)!r}"


@pytest.fixture
def captured(caplog):
    """Everything logged while the test runs, at DEBUG: the raw records' text (no filter, so a
    secret that reached a log call would show) and the lines the JSON handler writes."""
    caplog.set_level(logging.DEBUG)
    raw, rendered = io.StringIO(), io.StringIO()
    raw_handler = logging.StreamHandler(raw)
    raw_handler.setFormatter(_EveryField())
    json_handler = logs.handler("json", rendered)
    root = logging.getLogger()
    root.addHandler(raw_handler)  # first: it sees each record before any filter touches it
    root.addHandler(json_handler)
    yield raw, rendered
    root.removeHandler(json_handler)
    root.removeHandler(raw_handler)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_no_secret_reaches_a_log_line(app, client, captured, caplog, receiver):  # noqa: F811
    raw, rendered = captured
    key = create_key(app, "alice", "editor")
    editor = {"Authorization": f"Bearer {key}"}
    receiver.expect_request("/hook").respond_with_data("ok")
    receiver.expect_request("/fail").respond_with_data("no", status=500)
    secrets = [key]
    for path in ("/hook", "/fail"):
        created = client.post("/v1/webhooks", json={"url": receiver.url_for(path)}, headers=editor)
        assert created.status_code == 201
        secrets.append(created.get_json()["secret"])
    rotated = client.post("/v1/webhooks/1/rotate-secret", headers=editor)
    assert rotated.status_code == 200, rotated.get_json()
    secrets.append(rotated.get_json()["secret"])

    write = client.post(D1_VN, json=a_change(), headers={**editor, "X-Request-ID": "req-log-test-1"})
    assert write.status_code == 201
    wrong_key = "exk_" + "x" * 43
    assert client.get("/v1/countries/VN", headers={"Authorization": f"Bearer {wrong_key}"}).status_code == 401
    worker = DeliveryWorker(app, name="log-test-worker")
    try:
        assert worker.run_once() >= 2
    finally:
        worker.close()
    signatures = [request.headers["webhook-signature"] for request, _ in receiver.log]
    assert len(signatures) >= 2
    secrets += [wrong_key] + [s.partition(",")[2] for sig in signatures for s in sig.split()]

    everything = raw.getvalue() + rendered.getvalue() + caplog.text
    for secret in secrets:
        assert secret not in everything
        assert secret[len("whsec_") :] not in everything

    lines = json_lines(rendered)
    [line] = [x for x in lines if x.get("request_id") == "req-log-test-1"]
    assert line["logger"] == logs.REQUEST_LOGGER
    assert line["method"] == "POST"
    assert line["route"] == "/v1/lists/<list_id>/entries/<ref>/changes"
    assert line["status"] == 201
    assert line["actor"] == "alice"
    assert line["duration_ms"] >= 0
    assert write.headers["X-Request-ID"] == "req-log-test-1"
    assert {"time", "level", "message"} <= set(line)

    refused = [x for x in lines if x.get("status") == 401]
    assert refused and refused[0]["actor"] == "anonymous"
    [claim] = [x for x in lines if x.get("kind") == "claim"]
    assert claim["worker"] == "log-test-worker" and len(claim["delivery_ids"]) >= 2
    attempts = {x["delivery_id"]: x for x in lines if x.get("kind") == "attempt"}
    assert set(attempts) == set(claim["delivery_ids"])
    outcomes = {x["outcome"] for x in attempts.values()}
    assert outcomes == {"succeeded", "pending"}  # /fail answered 500: retried later
    for attempt in attempts.values():
        assert attempt["event_id"].startswith("evt_")
        assert attempt["webhook_id"] in (1, 2)
        assert attempt["duration_ms"] >= 0
    failed = next(x for x in attempts.values() if x["outcome"] == "pending")
    assert failed["http_status"] == 500 and failed["error"] == "HTTP 500"


def test_request_ids_are_generated_and_reads_are_anonymous(client, captured):
    _raw, rendered = captured
    response = client.get("/v1/countries/VN")
    [line] = [x for x in json_lines(rendered) if x.get("logger") == logs.REQUEST_LOGGER]
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert len(line["request_id"]) == 32
    assert line["actor"] == "anonymous"
    assert line["route"] == "/v1/countries/<ref>"


def test_a_secret_in_a_message_is_blanked_by_the_handler():
    stream = io.StringIO()
    logger = logging.getLogger("tests.redaction")
    handler = logs.handler("json", stream)
    logger.addHandler(handler)
    try:
        logger.warning(
            "oops %s %s",
            "Bearer exk_abcdefghijklmnop",
            "whsec_c2VjcmV0c2VjcmV0",
            extra={"sig": "v1,AAAABBBBCCCCDDDDEEEE"},
        )
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "exk_abc" not in text and "whsec_c2V" not in text and "AAAABBBB" not in text
    assert json.loads(text)["message"].count(logs.REDACTED) == 2


@pytest.mark.parametrize(
    "secret, hidden",
    [
        ("exk_abcdefghijklmnop", "abcdefghijklmnop"),
        ("whsec_c2VjcmV0c2VjcmV0", "c2VjcmV0c2VjcmV0"),
        ("v1,AAAABBBBCCCCDDDDEEEE", "AAAABBBBCCCCDDDDEEEE"),
        ("Bearer tok3n-value", "tok3n-value"),
        ("bEaReR tok3n-value", "tok3n-value"),
        ("BEARER tok3n-value", "tok3n-value"),
        # Glued to what comes before it (a request id `req_exk_…`, a path segment), or
        # percent-encoded as a URL carries it: still a secret (found by the outside probe).
        ("req_exk_GLUEDSECRET0002", "GLUEDSECRET0002"),
        ("x_whsec_c2VjcmV0c2VjcmV0", "c2VjcmV0c2VjcmV0"),
        ("k=exk%5FENCODEDSECRET01", "ENCODEDSECRET01"),
        ("k=exk%5fENCODEDSECRET01", "ENCODEDSECRET01"),
        ("auth=Bearer%20tok3n-value", "tok3n-value"),
        ("auth=bearer+tok3n-value", "tok3n-value"),
        # Any case of the prefixes (found by the second outside probe).
        ("Exk_MIXEDCASESECRET01", "MIXEDCASESECRET01"),
        ("EXK_MIXEDCASESECRET01", "MIXEDCASESECRET01"),
        ("WHSEC_c2VjcmV0c2VjcmV0", "c2VjcmV0c2VjcmV0"),
    ],
)
@pytest.mark.parametrize("where", ["message", "field"])
def test_each_kind_of_secret_alone_is_blanked_wherever_it_is(secret, hidden, where):
    """The handler looks at a line's fields all at once before looking at each (logs._may_hold_secret):
    a single secret of any kind, in any case the pattern accepts, is still found."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.redaction.one")
    handler = logs.handler("json", stream)
    logger.addHandler(handler)
    try:
        if where == "message":
            logger.warning("got %s", secret)
        else:
            logger.warning("got a header", extra={"header": f"x {secret}"})
    finally:
        logger.removeHandler(handler)
    assert hidden not in stream.getvalue()
    assert logs.REDACTED in stream.getvalue()


def test_a_path_cannot_forge_a_line_of_the_text_log(client, monkeypatch, capsys):
    """A percent-encoded line break in a URL (found by the outside probe) shows escaped in the
    request line's message, so it cannot start a line that reads like another request's."""
    monkeypatch.setenv("EXPORTCTL_LOG_FORMAT", "text")
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        logs.configure()
        client.get(
            "/v1/countries/VN%0A2026-12-02%2010:00:00,000%20INFO%20exportctl.requests:%20GET%20/v1/FORGED"
        )
    finally:
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])
    lines = capsys.readouterr().err.splitlines()
    assert not any(line.startswith("2026-12-02 10:00:00,000") for line in lines)
    assert any("VN\\n2026-12-02" in line for line in lines)


@pytest.mark.parametrize("separator", ["%09", "%0A", "%20"])
def test_a_bearer_token_in_a_path_is_blanked_before_the_path_is_escaped(client, separator, caplog):
    """The request line escapes a path's control characters; a `Bearer<TAB>token` in it is
    blanked first, while the tab still separates it (found by the second outside probe)."""
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = logs.handler("text", stream)
    logging.getLogger().addHandler(handler)
    try:
        client.get(f"/v1/countries/Bearer{separator}tok3nSECRETvalue")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "tok3nSECRETvalue" not in stream.getvalue()
    assert logs.REDACTED in stream.getvalue()


def test_text_format_for_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("EXPORTCTL_LOG_FORMAT", "text")
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        logs.configure()
        logging.getLogger("tests.text").warning("plain %s", "words")
    finally:
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])
    err = capsys.readouterr().err
    assert "WARNING tests.text: plain words" in err
    assert not err.lstrip().startswith("{")


@pytest.mark.parametrize("value", ["xml", "yes"])
def test_an_unknown_log_format_is_refused(value):
    with pytest.raises(ValueError, match="log format"):
        load_config({"EXPORTCTL_LOG_FORMAT": value})


def test_json_is_the_default_format():
    assert load_config({})["LOG_FORMAT"] == "json"
