"""Rendered JSON documents, cached by the version of the data they were built from.

Every write emits an event in its own transaction, so the last event number
is the version of all the data the API serves. A lookup costs one indexed read
of that number; the document is rebuilt only when it moved. Each process keeps
its own bounded LRU, so several workers stay correct without coordination.
"""

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cachetools
from flask import Flask, current_app, json, request

from service import db
from service.domain.events import current_sequence


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str


class DocumentCache:
    def __init__(self, maxsize: int):
        self._cache: cachetools.LRUCache = cachetools.LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Rendered | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: Hashable, value: Rendered) -> None:
        with self._lock:
            self._cache[key] = value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def init_app(app: Flask) -> None:
    app.extensions["exportctl.documents"] = DocumentCache(app.config["LOOKUP_CACHE_SIZE"])


def data_version() -> int:
    with db.database().engine.connect() as connection:
        return current_sequence(connection)


def render(
    data: Any,
    schema=None,
    *,
    serialize: Callable[[Any], bytes] | None = None,
    etag_prefix: Callable[[Any], str] | None = None,
) -> Rendered:
    """Bytes of a document: dumped by its schema as JSON, or by `serialize` (Atom)."""
    body = serialize(data) if serialize else json.dumps(schema.dump(data)).encode()
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    return Rendered(body=body, etag=f"{etag_prefix(data)}-{digest}" if etag_prefix else digest)


def cached(key: Hashable, build: Callable[[], Any], schema=None, **render_options) -> Rendered:
    """The document for `key` at the current data version, built on a miss."""
    cache: DocumentCache = current_app.extensions["exportctl.documents"]
    versioned = (key, data_version())
    rendered = cache.get(versioned)
    if rendered is None:
        rendered = render(build(), schema, **render_options)
        cache.put(versioned, rendered)
    return rendered


def respond(rendered: Rendered, mimetype: str = "application/json"):
    """The document with a strong ETag; 304 when If-None-Match already has it."""
    response_class = current_app.response_class
    if request.if_none_match.contains_weak(rendered.etag):
        response = response_class(status=304)
    else:
        response = response_class(rendered.body, mimetype=mimetype)
    response.set_etag(rendered.etag)
    response.headers["Cache-Control"] = "no-cache"
    return response
