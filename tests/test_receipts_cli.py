"""`exportctl receipts`: verify a receipt offline, rotate and list the signing keys; and the first
signing key made once however many processes ask for it at the same moment."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from service import clock, db
from service.domain import receipts
from service.models import SigningKey


@pytest.fixture
def receipt(client, reader):
    response = client.post("/v1/receipts", json={"country": "VN"}, headers=reader)
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def jwks_file(client, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(client.get("/.well-known/jwks.json").get_data(as_text=True))
    return path


def verify(app, *args, input=None):  # noqa: A002
    return app.test_cli_runner().invoke(args=["receipts", "verify", *args], input=input)


def test_a_good_receipt_verifies_against_a_saved_jwks(app, receipt, jwks_file, tmp_path):
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt, indent=2))

    result = verify(app, str(path), "--jwks", str(jwks_file))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"valid: receipt {receipt['id']} signed by kid {receipt['kid']} on {receipt['issued_at']}"
    )


def test_verify_reads_stdin_and_defaults_to_the_local_database(app, receipt):
    result = verify(app, "-", input=json.dumps(receipt))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid: ")


def test_verify_fetches_the_jwks_from_a_url(app, receipt, jwks_file, httpserver, tmp_path):
    httpserver.expect_request("/.well-known/jwks.json").respond_with_data(
        jwks_file.read_text(), content_type="application/json"
    )
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))

    result = verify(app, str(path), "--jwks", httpserver.url_for("/.well-known/jwks.json"))

    assert result.exit_code == 0, result.output


def _tamper_answer(receipt):
    receipt["answer"]["restrictions_apply"] = not receipt["answer"]["restrictions_apply"]


def _tamper_signature(receipt):
    head, payload, signature = receipt["jws"].split(".")
    flipped = ("A" if signature[5] != "A" else "B").join((signature[:5], signature[6:]))
    receipt["jws"] = f"{head}.{payload}.{flipped}"


def _tamper_payload(receipt):
    head, payload, signature = receipt["jws"].split(".")
    flipped = ("A" if payload[20] != "A" else "B").join((payload[:20], payload[21:]))
    receipt["jws"] = f"{head}.{flipped}.{signature}"


def _unknown_kid(receipt):
    receipt["jws"] = "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vcGUifQ." + receipt["jws"].split(".", 1)[1]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_answer, "fields differ from what was signed: answer"),
        (_tamper_signature, "signature does not verify"),
        (_tamper_payload, "signature does not verify"),
        (_unknown_kid, "has no key nope"),
        (lambda r: r.pop("jws"), "Not a receipt"),
    ],
    ids=["field", "signature", "payload", "kid", "no-jws"],
)
def test_a_tampered_receipt_does_not_verify_and_says_why(app, receipt, jwks_file, tmp_path, tamper, reason):
    tamper(receipt)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))

    result = verify(app, str(path), "--jwks", str(jwks_file))

    assert result.exit_code == 1
    assert result.stderr.startswith("invalid: ")
    assert reason in result.stderr
    assert not result.stderr.rstrip().endswith(":")  # a reason, not an empty one (probe finding)
    assert "Traceback" not in result.output


def test_verify_refuses_what_is_not_json(app, jwks_file, tmp_path):
    path = tmp_path / "receipt.json"
    path.write_text("not json")
    result = verify(app, str(path), "--jwks", str(jwks_file))
    assert result.exit_code != 0
    assert "not JSON" in result.output


def test_rotate_key_then_keys_lists_both(app, receipt):
    runner = app.test_cli_runner()
    rotated = runner.invoke(args=["receipts", "rotate-key"])
    assert rotated.exit_code == 0, rotated.output
    assert f"retired (still published): {receipt['kid']}" in rotated.output

    listed = runner.invoke(args=["receipts", "keys"])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(receipt["kid"]) and "retired" in lines[0]
    assert lines[1].endswith("current")
    # The old receipt still verifies against the service's keys.
    assert verify(app, "-", input=json.dumps(receipt)).exit_code == 0


def test_the_first_signing_key_is_made_once_when_many_ask_at_once(app, monkeypatch):
    """Every thread finds no key, then all insert one at the same moment: one insert wins,
    the others read the winner's key."""
    count = 6
    barrier = threading.Barrier(count, timeout=30)
    real_current = receipts._current
    waited = threading.local()

    def current_then_wait(session):
        found = real_current(session)
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()  # everyone has seen "no key" before anyone inserts
        return found

    monkeypatch.setattr(receipts, "_current", current_then_wait)
    with app.app_context():
        sessions = db.database().sessionmaker
        now = clock.utcnow()
        with ThreadPoolExecutor(count) as pool:
            kids = list(pool.map(lambda _: receipts.ensure_signing_key(sessions, now).kid, range(count)))
        with sessions() as session:
            stored = session.scalar(select(func.count()).select_from(SigningKey))

    assert stored == 1
    assert len(set(kids)) == 1


def _make_first_key(url: str, barrier, kids) -> None:
    """In a process of its own: find no key, wait for the others, then insert one."""
    from datetime import UTC, datetime

    from sqlalchemy.orm import sessionmaker

    from service.db import make_engine

    engine = make_engine(url)
    real_current = receipts._current
    waiting = [True]

    def current_then_wait(session):
        found = real_current(session)
        if waiting:
            waiting.clear()
            barrier.wait()
        return found

    receipts._current = current_then_wait
    try:
        kids.put(receipts.ensure_signing_key(sessionmaker(engine), datetime.now(UTC)).kid)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_processes_racing_for_the_first_signing_key_end_with_one(database_url):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    count = 3
    barrier = context.Barrier(count, timeout=60)
    kids = context.Queue()
    processes = [
        context.Process(target=_make_first_key, args=(database_url, barrier, kids)) for _ in range(count)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * count
    found = {kids.get(timeout=5) for _ in range(count)}

    from sqlalchemy.orm import Session

    from service.db import make_engine

    engine = make_engine(database_url)
    with Session(engine) as session:
        stored = [key.kid for key in session.scalars(select(SigningKey))]
    engine.dispose()
    assert stored == list(found) and len(found) == 1
