"""Signed receipts: what the service answered, signed so that anyone can check it offline.

A receipt's payload is a JSON document (the request, the answer, the data version and event
sequence, who asked, when); its `jws` is a compact JWS (RFC 7515) of that payload, signed with
Ed25519 (`alg` EdDSA, RFC 8037). The signing keys live in the database, so every process and
host signs with the same one; a rotated key is retired, not deleted, and stays in the published
JWKS so that the receipts it signed stay verifiable.
"""

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwa import EdDSA, JWSAlgModel
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.domain.errors import ConcurrentUpdate, DomainError, NotFound
from service.models import Receipt, SigningKey

ALGORITHM = "EdDSA"
CURVE: Final[Literal["Ed25519"]] = "Ed25519"
# Explicit typing (RFC 8725, 3.11): a receipt's JWS cannot be mistaken for another kind of token.
JWS_TYPE = "exportctl-receipt+jws"
ID_PREFIX = "rcp_"
# Fields of a stored receipt that are not its payload.
UNSIGNED_FIELDS = ("jws",)
# Ceiling on a payload (a country's answer on every list is some tens of kilobytes).
MAX_PAYLOAD = 2_000_000

SessionFactory = Callable[[], Session]


class ReceiptInvalid(DomainError):
    """A receipt that does not verify: `detail` says why."""


class _ReceiptRegistry(JWSRegistry):
    """EdDSA only, nothing else (no `none`, no HMAC a public key could be fed to).

    RFC 9864 deprecates the polymorphic name `EdDSA` in favour of `Ed25519`, and joserfc warns
    of it on every use. Receipts keep `EdDSA` (RFC 8037), which verifiers everywhere accept;
    the curve is pinned here instead: a key that is not Ed25519 is refused.
    """

    max_payload_length = MAX_PAYLOAD

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != ALGORITHM:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed for receipts")
        return EdDSA


def _registry() -> _ReceiptRegistry:
    # typ is a registered header; anything unregistered (or crit) is refused.
    return _ReceiptRegistry(algorithms=[ALGORITHM])


# --- signing keys -----------------------------------------------------------------------


def _current(session: Session) -> SigningKey | None:
    return session.scalars(
        select(SigningKey).where(SigningKey.algorithm == ALGORITHM, SigningKey.retired_at.is_(None))
    ).one_or_none()


def _new_key(now: datetime) -> SigningKey:
    key = OKPKey.generate_key(CURVE, private=True)
    kid = key.thumbprint()
    public = key.as_dict(private=False)
    public.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_jwk=dict(public),
        private_pem=key.as_pem(private=True).decode(),
        created_at=now,
    )


def ensure_signing_key(sessions: SessionFactory, now: datetime, attempts: int = 5) -> SigningKey:
    """The current signing key, created (in a transaction of its own) if there is none yet.

    Several processes may find none at once: the unique index on the current key lets one
    insert win; the others' inserts fail and they read the winner's key.
    """
    for _ in range(attempts):
        with sessions() as session:
            found = _current(session)
            if found is not None:
                return found
            created = _new_key(now)
            session.add(created)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
            session.refresh(created)  # loaded, whatever the sessionmaker's expire_on_commit
            return created
    raise ConcurrentUpdate("The current signing key kept changing while it was being read; retry.")


def rotate_signing_key(session: Session, now: datetime) -> tuple[SigningKey, SigningKey | None]:
    """A new current key; the one it replaces is retired (still published). Returns (new, old).

    Run in the caller's transaction; against a concurrent rotation it fails (IntegrityError, on
    the current key's unique index) and nothing changes."""
    old = _current(session)
    if old is not None:
        session.execute(update(SigningKey).where(SigningKey.id == old.id).values(retired_at=now))
    created = _new_key(now)
    session.add(created)
    session.flush()
    return created, old


def signing_key(session: Session) -> SigningKey:
    """The current signing key (ensure_signing_key makes one exist)."""
    found = _current(session)
    if found is None:
        raise DomainError("No current signing key: run `exportctl receipts rotate-key` to make one.")
    return found


def all_signing_keys(session: Session) -> list[SigningKey]:
    return list(session.scalars(select(SigningKey).order_by(SigningKey.id)))


def jwks(keys: list[SigningKey]) -> dict[str, Any]:
    """The public JWK Set (RFC 7517) of `keys`: current and retired alike."""
    return {"keys": [dict(key.public_jwk) for key in keys]}


# --- receipts ---------------------------------------------------------------------------


def new_receipt_id() -> str:
    return ID_PREFIX + secrets.token_urlsafe(16)


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The payload's bytes: sorted keys, no whitespace, UTF-8 (one spelling per document)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(payload: Mapping[str, Any], key: SigningKey) -> str:
    private = OKPKey.import_key(key.private_pem)
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": JWS_TYPE}
    return jws.serialize_compact(header, canonical(payload), private, registry=_registry())


def issue_receipt(
    session: Session,
    *,
    build_payload: Callable[[str, SigningKey], dict[str, Any]],
    issued_at: datetime,
    country_code: str,
    api_key_id: int | None,
    key_name: str,
) -> Receipt:
    """Store and sign a receipt. `build_payload(receipt id, signing key)` gives the rendered
    payload (the HTTP edge renders it with the API's own schemas)."""
    key = signing_key(session)
    public_id = new_receipt_id()
    payload = build_payload(public_id, key)
    receipt = Receipt(
        public_id=public_id,
        issued_at=issued_at,
        country_code=country_code,
        api_key_id=api_key_id,
        key_name=key_name,
        kid=key.kid,
        payload=payload,
        jws=sign(payload, key),
    )
    session.add(receipt)
    session.flush()
    return receipt


def get_receipt(session: Session, public_id: str) -> Receipt:
    receipt = None
    if public_id.startswith(ID_PREFIX) and len(public_id) <= 40:
        receipt = session.scalars(select(Receipt).where(Receipt.public_id == public_id)).one_or_none()
    if receipt is None:
        raise NotFound(f"No receipt {public_id!r}.")
    return receipt


def receipt_document(receipt: Receipt) -> dict[str, Any]:
    """A receipt as served: its payload, and the JWS over it."""
    return {**receipt.payload, "jws": receipt.jws}


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    kid: str
    receipt_id: str | None
    issued_at: str | None


def verify(receipt: Any, key_set: Any) -> Verified:
    """Check a receipt as served (a JSON object with `jws`) against a JWK Set (a JSON object).

    Valid when the JWS verifies with the set's key of its `kid` (Ed25519, EdDSA) and its payload
    is exactly the receipt's other fields. Raises ReceiptInvalid saying why not.
    """
    if not isinstance(receipt, dict) or not isinstance(receipt.get("jws"), str):
        raise ReceiptInvalid("Not a receipt: expected a JSON object with a `jws` string.")
    token = receipt["jws"]
    try:
        header = jws.extract_compact(token.encode(), registry=_registry()).headers()
    except (JoseError, ValueError, TypeError) as exc:
        raise ReceiptInvalid(f"The `jws` is not a compact JWS: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise ReceiptInvalid(f"The JWS is signed with {header.get('alg')!r}, not {ALGORITHM}.")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise ReceiptInvalid("The JWS names no signing key (`kid`).")
    key = _public_key(key_set, kid)
    try:
        verified = jws.deserialize_compact(token, key, registry=_registry())
    except JoseError as exc:
        reason = exc.description or exc.error or type(exc).__name__
        raise ReceiptInvalid(
            f"The signature does not verify with key {kid} ({reason}): the receipt was altered, "
            "or was not signed by that key."
        ) from exc
    try:
        payload = json.loads(verified.payload)
    except ValueError as exc:
        raise ReceiptInvalid("The signed payload is not JSON.") from exc
    fields = {name: value for name, value in receipt.items() if name not in UNSIGNED_FIELDS}
    if payload != fields:
        differing = sorted(
            name for name in set(payload) | set(fields) if payload.get(name) != fields.get(name)
        )
        raise ReceiptInvalid(
            "The signature is good but the receipt's fields differ from what was signed: "
            + ", ".join(differing)
            + "."
        )
    if payload.get("kid") not in (None, kid):
        raise ReceiptInvalid(f"The receipt names key {payload.get('kid')} but was signed by {kid}.")
    return Verified(kid=kid, receipt_id=payload.get("id"), issued_at=payload.get("issued_at"))


def _public_key(key_set: Any, kid: str) -> OKPKey:
    if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
        raise ReceiptInvalid("Not a JWK Set: expected a JSON object with `keys`.")
    for data in key_set["keys"]:
        if isinstance(data, dict) and data.get("kid") == kid:
            if data.get("kty") != "OKP" or data.get("crv") != CURVE:
                raise ReceiptInvalid(f"Key {kid} is not an Ed25519 key.")
            public = {name: data[name] for name in ("kty", "crv", "x", "kid") if name in data}
            try:
                key = OKPKey.import_key(public)
            except (JoseError, ValueError, TypeError) as exc:
                raise ReceiptInvalid(f"Key {kid} in the JWK Set is malformed: {exc}") from exc
            if key.thumbprint() != kid:
                raise ReceiptInvalid(f"Key {kid} in the JWK Set is not the key its kid names.")
            return key
    raise ReceiptInvalid(f"The JWK Set has no key {kid}: it was not signed by a key of this service.")
