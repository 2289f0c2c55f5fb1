"""Signed receipts: POST /v1/receipts, GET /v1/receipts/{id}, /.well-known/jwks.json."""

import base64
import json

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError, DecodeError
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from service.models import Receipt
from tests.conftest import a_change


def post_receipt(client, headers, **body):
    return client.post("/v1/receipts", json={"country": "VN", **body}, headers=headers)


def verify_with_joserfc(token: str, jwks: dict) -> dict:
    """Verify as an auditor would: the served JWK Set, joserfc, EdDSA only."""
    key_set = KeySet.import_key_set(jwks)
    header = jws.extract_compact(token.encode()).headers()
    with pytest.warns(Warning, match="EdDSA is deprecated"):  # joserfc's note on RFC 9864's naming
        verified = jws.deserialize_compact(token, key_set.get_by_kid(header["kid"]), algorithms=["EdDSA"])
    return json.loads(verified.payload)


def test_a_receipt_for_vietnam_verifies_with_the_published_key(client, reader, session):
    response = post_receipt(client, reader)
    assert response.status_code == 201, response.json
    receipt = response.json
    assert response.headers["Location"] == f"/v1/receipts/{receipt['id']}"
    assert receipt["id"].startswith("rcp_")
    assert receipt["key_name"] == "rita"
    assert receipt["request"] == {
        "country": "VN",
        "lists": None,
        "as_of": "2026-11-23",
        "known_at": "2026-11-23T12:00:00Z",
    }
    assert receipt["issued_at"] == "2026-11-23T12:00:00Z"
    assert receipt["answer"]["country"]["alpha_2"] == "VN"
    assert receipt["answer"]["known_at"] == "2026-11-23T12:00:00Z"
    assert receipt["answer"]["entries"] and all(
        e["sources"] is not None for e in receipt["answer"]["entries"]
    )
    snapshot = client.get("/v1/snapshot?format=jsonl")
    assert receipt["data_version"] == int(snapshot.headers["X-Data-Version"])
    assert receipt["event_sequence"] == int(snapshot.headers["X-Event-Sequence"])

    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert "max-age" in jwks.headers["Cache-Control"] and "public" in jwks.headers["Cache-Control"]
    [key] = jwks.json["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA" and key["use"] == "sig"
    assert "d" not in key  # never the private part
    assert key["kid"] == receipt["kid"]

    payload = verify_with_joserfc(receipt["jws"], jwks.json)
    assert payload == {k: v for k, v in receipt.items() if k != "jws"}
    header = jws.extract_compact(receipt["jws"].encode()).headers()
    assert header == {"alg": "EdDSA", "kid": receipt["kid"], "typ": "exportctl-receipt+jws"}
    assert session.scalar(select(func.count()).select_from(Receipt)) == 1


def test_the_answer_is_the_lookups_answer(client, reader):
    receipt = post_receipt(client, reader, as_of="2026-03-01").json
    lookup = client.get(f"/v1/countries/VN?as_of=2026-03-01&known_at={receipt['request']['known_at']}")
    assert receipt["answer"] == lookup.json
    assert client.get(receipt["links"]["reproduce"]).json == receipt["answer"]


def _flip(segment: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("part", [1, 2], ids=["payload", "signature"])
def test_one_byte_changed_does_not_verify(client, reader, part):
    receipt = post_receipt(client, reader).json
    jwks = client.get("/.well-known/jwks.json").json
    segments = receipt["jws"].split(".")
    segments[part] = _flip(segments[part], 10)
    tampered = ".".join(segments)
    with pytest.raises((BadSignatureError, DecodeError)):
        verify_with_joserfc(tampered, jwks)


def test_anonymous_or_bad_key_gets_401_and_nothing_is_stored(client, session):
    assert post_receipt(client, {}).status_code == 401
    assert post_receipt(client, {"Authorization": "Bearer exk_nope"}).status_code == 401
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"country": "Atlantis"}, "country"),
        ({"country": ""}, "country"),
        ({"as_of": "1899-12-31"}, "as_of"),
        ({"as_of": "2026-02-30"}, "as_of"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"lists": ["us-ear-zz"]}, "lists.0"),
        ({"lists": ["us-ear-d1", "nope"]}, "lists.1"),
        ({"lists": []}, "lists"),
        ({"lists": "us-ear-d1"}, "lists"),
        ({"known_at": "2026-01-01T00:00:00Z"}, "known_at"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(client, reader, session, body, field):
    response = client.post("/v1/receipts", json={"country": "VN", **body}, headers=reader)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert field in response.json["errors"], response.json
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_missing_country_is_422(client, reader):
    response = client.post("/v1/receipts", json={}, headers=reader)
    assert response.status_code == 422
    assert "country" in response.json["errors"]


def test_lists_by_id_or_code_limit_the_answer(client, reader):
    receipt = post_receipt(client, reader, lists=["D:1", "us-ear-d3"]).json
    assert receipt["request"]["lists"] == ["us-ear-d1", "us-ear-d3"]
    assert [e["list"]["id"] for e in receipt["answer"]["entries"]] == ["us-ear-d1", "us-ear-d3"]
    assert [c["list_id"] for c in receipt["answer"]["lists_checked"]] == ["us-ear-d1", "us-ear-d3"]
    assert client.get(receipt["links"]["reproduce"]).json == receipt["answer"]


def test_get_returns_the_receipt_as_issued(client, reader, editor):
    receipt = post_receipt(client, reader).json
    fetched = client.get(f"/v1/receipts/{receipt['id']}", headers=editor)  # any valid key
    assert fetched.status_code == 200
    assert fetched.json == receipt
    assert fetched.headers["ETag"]
    assert client.get(f"/v1/receipts/{receipt['id']}").status_code == 401
    missing = client.get("/v1/receipts/rcp_doesnotexist", headers=reader)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_idempotency_key_replays_the_same_receipt(client, reader, session):
    headers = {**reader, "Idempotency-Key": "receipt-1"}
    first = post_receipt(client, headers)
    again = post_receipt(client, headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert session.scalar(select(func.count()).select_from(Receipt)) == 1


def test_receipts_count_against_the_write_rate_limit(build_app, database_url):
    from tests.conftest import create_key

    app = build_app(database_url, WRITE_RATE_LIMIT="2 per minute")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key(app, 'rita', 'reader')}"}
    assert [post_receipt(client, headers).status_code for _ in range(3)] == [201, 201, 429]


def test_after_rotation_old_receipts_verify_and_new_ones_carry_the_new_kid(app, client, reader, frozen_clock):
    old = post_receipt(client, reader).json
    result = app.test_cli_runner().invoke(args=["receipts", "rotate-key"])
    assert result.exit_code == 0, result.output
    frozen_clock.advance(minutes=1)
    new = post_receipt(client, reader).json
    assert new["kid"] != old["kid"]
    jwks = client.get("/.well-known/jwks.json").json
    assert {k["kid"] for k in jwks["keys"]} == {old["kid"], new["kid"]}
    for receipt in (old, new):
        assert verify_with_joserfc(receipt["jws"], jwks) == {k: v for k, v in receipt.items() if k != "jws"}


def test_known_at_reproduces_the_receipt_after_a_later_change(client, reader, editor, frozen_clock):
    receipt = post_receipt(client, reader).json
    before = {e["list"]["id"]: e["status"] for e in receipt["answer"]["entries"]}
    frozen_clock.advance(hours=1)
    recorded = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes",
        json=a_change(effective_on="2026-11-23"),
        headers=editor,
    )
    assert recorded.status_code == 201, recorded.json
    now = client.get(f"/v1/countries/VN?as_of={receipt['request']['as_of']}").json
    assert {e["list"]["id"]: e["status"] for e in now["entries"]}["us-ear-d1"] == "removed"
    assert before["us-ear-d1"] != "removed"
    then = client.get(receipt["links"]["reproduce"]).json
    assert then == receipt["answer"]


def test_the_jwks_is_public_even_where_reads_need_a_key(build_app, database_url):
    app = build_app(database_url, READS_REQUIRE_KEY=True)
    client = app.test_client()
    assert client.get("/v1/countries/VN").status_code == 401
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert len(response.json["keys"]) == 1  # made on first need: the set is never empty
    again = client.get("/.well-known/jwks.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
