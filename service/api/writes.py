"""How every write runs: JSON only, one transaction, safe retries with Idempotency-Key.

An operation runs in the request's session and returns an Outcome; the
idempotency record of its response is inserted in the same transaction, so a
retried POST either finds the original response or finds nothing was done.
A concurrent write to the same entry is retried from a fresh read (where
If-Match was sent, the fresh read is what turns it into a 412).
"""

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import current_app, g, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import clock, db
from service.auth import current_principal
from service.domain.audit import Actor
from service.domain.errors import ConcurrentUpdate, DomainError, VersionMismatch
from service.domain.keys import Principal
from service.errors import IdempotencyKeyReused, PayloadTooLarge, UnsupportedMediaType
from service.models import IdempotencyRecord
from service.ratelimit import check_write_limit

# Each round of a write race has a winner, so N concurrent writers need at most N rounds.
ATTEMPTS = 20
JSON_MIMETYPES = ("application/json",)


@dataclass
class Outcome:
    """What a write returns: its data (rendered by the operation's documented response schema),
    status and headers."""

    data: Any
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    # What an Idempotency-Key keeps: the rendered body minus what must not be stored (a
    # webhook secret), and the name of a REPLAYS function that completes it on replay.
    store: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    replay: str | None = None
    # A refusal whose record must stand (a proposal marked stale): committed, then raised.
    error: DomainError | None = None
    # `data` is the document itself, already rendered by the operation's schema (a signed
    # receipt is served exactly as it was signed).
    rendered: bool = False

    def render(self) -> Any:
        if self.rendered:
            return self.data
        schema = g.get("response_schema")
        return schema.dump(self.data) if schema is not None and self.data is not None else self.data


def _restore_webhook_secret(session: Session, body: dict) -> dict:
    from service.domain.subscriptions import restore_secret

    return restore_secret(session, body)


REPLAYS: dict[str, Callable[[Session, dict], dict]] = {"webhook-secret": _restore_webhook_secret}


def json_body(view):
    """415 unless the body is declared JSON; 413 if it is larger than the service accepts."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        mimetype = request.mimetype or ""
        if mimetype not in JSON_MIMETYPES and not mimetype.endswith("+json"):
            raise UnsupportedMediaType(
                f"Send the body as application/json (got {mimetype or 'no Content-Type'})."
            )
        charset = request.mimetype_params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):  # JSON is UTF-8 (RFC 8259): another charset would be misread
            raise UnsupportedMediaType(f"Send JSON as UTF-8 (got charset={charset}).")
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        # A chunked body has no Content-Length: the server cuts it at the limit, so a body
        # that fills the limit may have been cut and must not be read as if it were whole.
        if request.content_length is None and len(request.get_data(cache=True)) >= limit:
            raise PayloadTooLarge(f"Bodies are limited to {limit // 1024} KiB.")
        return view(*args, **kwargs)

    return wrapper


def rate_limited(view):
    """A per-key budget of writes (after authentication, so the key is known)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        check_write_limit(f"key:{current_principal().key_id}")
        return view(*args, **kwargs)

    return wrapper


# The write races a retry resolves: two first changes creating one entry, and two requests with
# one Idempotency-Key. Named as PostgreSQL names the constraint and as SQLite names its columns.
KNOWN_RACES = (
    ("uq_entries_list_id_country_code", "entries.list_id, entries.country_code"),
    ("uq_idempotency_records_api_key_id_key", "idempotency_records.api_key_id, idempotency_records.key"),
)


def known_race(error: IntegrityError) -> bool:
    """Whether `error` is a write race a fresh attempt resolves (else it is a bug, not retried)."""
    text = str(error.orig)
    return any(constraint in text or columns in text for constraint, columns in KNOWN_RACES)


def rendered_etag(data: Any) -> str:
    """The ETag GET gives `data` (rendered by this operation's response schema)."""
    from service.api.rendering import render

    return render(data, g.get("response_schema")).etag


def require_if_match(current: Callable[[], Any]) -> None:
    """For resources whose ETag is their rendered content: a sent If-Match must name the ETag of
    `current()` (or be `*`), else VersionMismatch (412): it changed since the client read it.
    The document is built only when the header was sent."""
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return
    if not request.if_match.contains(rendered_etag(current())):
        raise VersionMismatch("If-Match names another state of this resource: it changed since you read it.")


def fingerprint() -> str:
    """What makes two requests 'the same request' for an Idempotency-Key."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        body = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), body):
        digest.update(part + b"\0")
    return digest.hexdigest()


def _replay(session: Session, record: IdempotencyRecord, request_hash: str):
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request.",
            errors={"Idempotency-Key": ["Already used with a different method, path or body."]},
        )
    body = record.response_body
    if record.replay:
        body = json.dumps(REPLAYS[record.replay](session, json.loads(body)))
    response = current_app.response_class(body, status=record.status_code, mimetype="application/json")
    for name, value in record.response_headers.items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(session: Session, principal: Principal, key: str) -> IdempotencyRecord | None:
    """The live record for this key (one past IDEMPOTENCY_TTL is as good as purged)."""
    cutoff = clock.utcnow() - current_app.config["IDEMPOTENCY_TTL"]
    return session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.api_key_id == principal.key_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at >= cutoff,
        )
    ).one_or_none()


def perform(operation: Callable[[Session, Principal], Outcome], idempotency_key: str | None = None):
    """Run a write operation as the current principal; return its response."""
    principal = current_principal()
    assert principal is not None, "writes run behind @blp.authorized"
    session = db.session()
    request_hash = fingerprint() if idempotency_key else ""
    if idempotency_key:
        record = _find(session, principal, idempotency_key)
        if record is not None:
            return _replay(session, record, request_hash)
    for _attempt in range(ATTEMPTS):
        try:
            db.begin_write(session)
            if idempotency_key:  # first, so an expired record cannot block its key's reuse
                _purge_expired(session)
            outcome = operation(session, principal)
            document = outcome.render()
            body = json.dumps(document) if document is not None else ""
            if idempotency_key and outcome.error is None:
                session.add(
                    IdempotencyRecord(
                        api_key_id=principal.key_id,
                        key=idempotency_key,
                        method=request.method,
                        path=request.path,
                        request_hash=request_hash,
                        status_code=outcome.status,
                        response_body=body if outcome.store is None else json.dumps(outcome.store(document)),
                        response_headers=outcome.headers,
                        replay=outcome.replay,
                        created_at=clock.utcnow(),
                    )
                )
            session.commit()
        except (ConcurrentUpdate, IntegrityError) as exc:
            session.rollback()
            if isinstance(exc, IntegrityError) and not known_race(exc):
                raise
            time.sleep(random.uniform(0, 0.005))  # de-synchronise the losers
            if idempotency_key:
                record = _find(session, principal, idempotency_key)
                if record is not None:  # a concurrent retry of this request won the race
                    return _replay(session, record, request_hash)
            continue
        except DomainError:
            session.rollback()
            if idempotency_key:
                # A concurrent request with this key may have won and changed what we saw.
                record = _find(session, principal, idempotency_key)
                if record is not None:
                    return _replay(session, record, request_hash)
            raise
        except BaseException:
            session.rollback()
            raise
        if outcome.error is not None:
            raise outcome.error
        mimetype = "application/json" if document is not None else None
        response = current_app.response_class(body, status=outcome.status, mimetype=mimetype)
        for name, value in outcome.headers.items():
            response.headers[name] = value
        return response
    raise ConcurrentUpdate("The entry kept changing under this write; retry.")


def _purge_expired(session: Session) -> None:
    """Drop records past IDEMPOTENCY_TTL. Only keyed writes add records, so only they purge
    (an unkeyed write saves the statement; the table grows only with keyed writes anyway)."""
    cutoff = clock.utcnow() - current_app.config["IDEMPOTENCY_TTL"]
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))


def request_id() -> str | None:
    return g.get("request_id")


def actor(principal: Principal) -> Actor:
    """Who a write is recorded as: the key's name, and the request's id."""
    return Actor(name=principal.name, request_id=request_id(), role=principal.role)
