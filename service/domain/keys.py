"""API keys: created with a role, shown once, stored only as a hash, revocable."""

import hashlib
import secrets
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import clock
from service.domain.errors import Conflict, NotFound
from service.models import ApiKey
from service.vocabulary import Role

KEY_PREFIX = "exk_"


@dataclass(frozen=True)
class Principal:
    """Who is making a request."""

    key_id: int
    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return self.role >= role


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, role: Role) -> tuple[ApiKey, str]:
    """A new key; the plaintext is returned here and never again."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        name=name,
        role=role.label,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(secret),
        created_at=clock.utcnow(),
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"An active key is already named {name!r}; revoke it or pick another name.") from exc
    return record, secret


def revoke_key(session: Session, name_or_id: str) -> ApiKey:
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if name_or_id.isdigit():
        query = query.where(ApiKey.id == int(name_or_id))
    else:
        query = query.where(ApiKey.name == name_or_id)
    record = session.scalars(query).one_or_none()
    if record is None:
        raise NotFound(f"No active key {name_or_id!r}.")
    record.revoked_at = clock.utcnow()
    session.flush()
    return record


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def authenticate(session: Session, secret: str) -> Principal | None:
    """The principal behind an active key, or None."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    record = session.connection().execute(_ACTIVE_KEY, {"key_hash": hash_key(secret)}).one_or_none()
    if record is None:
        return None
    return Principal(key_id=record.id, name=record.name, role=Role.named(record.role))


# Every authenticated request runs this: built once (a statement memoises its cache key), the
# three columns a Principal needs, on the session's connection (no ORM object to build: the ORM
# path cost about six times the statement itself).
_KEYS = cast(Table, ApiKey.__table__)
_ACTIVE_KEY = select(_KEYS.c.id, _KEYS.c.name, _KEYS.c.role).where(
    _KEYS.c.key_hash == bindparam("key_hash"), _KEYS.c.revoked_at.is_(None)
)


def active_principal(session: Session, key_id: int) -> Principal | None:
    """The principal of a key that is still active (a signed-in page session holds only its id)."""
    record = session.scalars(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if record is None:
        return None
    return Principal(key_id=record.id, name=record.name, role=Role.named(record.role))
