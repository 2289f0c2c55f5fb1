"""Signed receipts: the service's answer for a country, stored and signed (a compact JWS, Ed25519),
and the public keys that verify them offline.

A receipt is asked for with any valid key (it is stored, so never anonymously; the key's name
is recorded in it) and read back with any valid key. Its id is random: one receipt's id tells
nothing of another's. The JWKS is public, like the keys in it.
"""

import json
from urllib.parse import urlencode

from flask.views import MethodView

from service import clock, db
from service.api import Blueprint, writes
from service.api.countries import country_answer, resolve_country, resolve_lists
from service.api.rendering import render, respond
from service.domain import receipts, snapshot
from service.domain.errors import InvalidInput, UnknownCountry
from service.schemas import (
    JwksSchema,
    ReceiptPayloadSchema,
    ReceiptRequestSchema,
    ReceiptSchema,
    WriteHeaders,
)
from service.vocabulary import Role

blp = Blueprint(
    "receipts",
    __name__,
    description="Signed receipts: proof of what the service answered, verifiable offline with its JWKS.",
)

JWKS_PATH = "/.well-known/jwks.json"
# A verifier that meets an unknown kid should fetch the set again; 5 minutes bounds the wait
# after a rotation for those that do not.
JWKS_CACHE_CONTROL = "public, max-age=300"

RECEIPT_PARAMETER = {
    "in": "path",
    "name": "receipt_id",
    "required": True,
    "description": "The receipt's id (`rcp_…`).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 40},
}

_payload_schema = ReceiptPayloadSchema()
_jwks_schema = JwksSchema()


def _serialize(document: dict) -> bytes:
    return json.dumps(document).encode()


def _reproduce_link(country: str, as_of, known_at: str, list_ids: list[str] | None) -> str:
    query = [("as_of", as_of.isoformat()), ("known_at", known_at)]
    query += [("list", list_id) for list_id in list_ids or []]
    return f"/v1/countries/{country}?{urlencode(query)}"


@blp.route("/v1/receipts")
class Receipts(MethodView):
    @blp.authorized(Role.READER, write=True, json=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ReceiptRequestSchema())
    @blp.response(
        201,
        ReceiptSchema,
        headers={"Location": {"description": "URL of the receipt.", "schema": {"type": "string"}}},
    )
    @blp.doc(operationId="create_receipt")
    def post(self, body, idempotency_key=None):
        """Ask for a signed receipt of a country's status (any valid key; its name is recorded).

        The service answers as `GET /v1/countries/{country}?as_of=` does, as known now, stores
        the answer and signs it: `jws` is a compact JWS (EdDSA, Ed25519) whose payload is the
        receipt without `jws`. `request.known_at` is the issue time: the lookup with that
        `known_at` gives the same answer later, whatever is recorded since. Verify a receipt
        with `/.well-known/jwks.json`, or offline with `exportctl receipts verify`.
        """
        session = db.session()
        try:
            country = resolve_country(body["country"])
        except UnknownCountry as exc:
            raise InvalidInput(
                "Invalid body field 'country'.", {"country": [exc.detail]}, **exc.extensions
            ) from exc
        list_ids = resolve_lists(session, body["lists"], "lists", body=True)
        as_of = body["as_of"] or clock.today()
        receipts.ensure_signing_key(db.database().sessionmaker, clock.utcnow())

        def operation(session, principal):
            issued_at = clock.utcnow()
            # Read before the answer: on PostgreSQL the answer can only be as new or newer.
            versions = snapshot.versions(session)
            answer = country_answer(session, country, as_of, issued_at, list_ids)

            def payload(receipt_id: str, key) -> dict:
                document = _payload_schema.dump(
                    {
                        "id": receipt_id,
                        "issued_at": issued_at,
                        "request": {
                            "country": country.alpha_2,
                            "lists": list_ids,
                            "as_of": as_of,
                            "known_at": issued_at,
                        },
                        "answer": answer,
                        "data_version": versions.data_version,
                        "event_sequence": versions.event_sequence,
                        "key_name": principal.name,
                        "kid": key.kid,
                        "links": {"self": f"/v1/receipts/{receipt_id}", "jwks": JWKS_PATH},
                    }
                )
                # The lookup that gives this answer again: known_at exactly as the receipt writes it.
                document["links"]["reproduce"] = _reproduce_link(
                    country.alpha_2, as_of, document["request"]["known_at"], list_ids
                )
                return document

            receipt = receipts.issue_receipt(
                session,
                build_payload=payload,
                issued_at=issued_at,
                country_code=country.alpha_2,
                api_key_id=principal.key_id,
                key_name=principal.name,
            )
            document = receipts.receipt_document(receipt)
            return writes.Outcome(document, 201, {"Location": document["links"]["self"]}, rendered=True)

        return writes.perform(operation, idempotency_key)


@blp.route("/v1/receipts/<receipt_id>", parameters=[RECEIPT_PARAMETER])
class ReceiptDetail(MethodView):
    @blp.authorized(Role.READER)
    @blp.response(200, ReceiptSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_receipt")
    def get(self, receipt_id):
        """A receipt, exactly as issued (any valid key may read it)."""
        receipt = receipts.get_receipt(db.session(), receipt_id)
        return respond(render(receipts.receipt_document(receipt), serialize=_serialize))


@blp.route(JWKS_PATH)
class Jwks(MethodView):
    @blp.response(
        200,
        JwksSchema,
        headers={"Cache-Control": {"description": JWKS_CACHE_CONTROL, "schema": {"type": "string"}}},
    )
    @blp.doc(operationId="get_jwks")
    def get(self):
        """The public keys (JWK Set, RFC 7517) that verify receipts: the current one and every
        retired one, so that old receipts stay verifiable. Public, cacheable for 5 minutes."""
        receipts.ensure_signing_key(db.database().sessionmaker, clock.utcnow())
        keys = receipts.all_signing_keys(db.session())
        response = respond(render(receipts.jwks(keys), _jwks_schema))
        response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
        return response
