"""Rendered JSON documents, cached by the version of the data they were built from.

Every change to what the API serves moves the data version counter in its
own transaction (a public event does it). A lookup costs one indexed read
of that number; the document is rebuilt only when it moved. Each process keeps
its own bounded LRU, so several workers stay correct without coordination.
"""

import gzip
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cachetools
import psycopg
import xxhash
from flask import Flask, current_app, g, json, request
from sqlalchemy.exc import OperationalError

from service import compression, metrics
from service.db import OwnConnections
from service.domain.events import DATA_VERSION_QUERY


@dataclass(slots=True, eq=False)
class Rendered:
    body: bytes
    etag: str
    # The query parameters that fetch the next page of a paged document (its Link rel="next").
    next_page: dict[str, str] | None = None
    # Large documents are served gzipped to clients that accept it: compressed on the first
    # such request and kept (a cached lookup that accepts gzip then costs no compression, and
    # a document nobody asks gzipped, like a cold feed page, never pays for it). Its ETag
    # differs from the identity's.
    compressible: bool = False
    gzipped: bytes | None = None

    @property
    def gzip_etag(self) -> str:
        return f"{self.etag}:gzip"  # flask-compress's convention for the responses it compresses

    def gzip_body(self) -> bytes:
        if self.gzipped is None:  # two threads may both compress once: same bytes, no harm
            self.gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self.gzipped

    @property
    def size(self) -> int:
        """Bytes it holds in the cache: the body, the gzipped body it may come to hold (counted
        up front, as a quarter of the body), and the object itself."""
        return len(self.body) + (len(self.body) // 4 if self.compressible else 0) + RENDERED_OVERHEAD


# The Rendered object, its ETag and key, and the cache's bookkeeping for one entry, roughly.
RENDERED_OVERHEAD = 600


@dataclass(frozen=True, slots=True)
class Body:
    """A document a view has already rendered (from cached fragments): `render` keeps its bytes."""

    body: bytes


@dataclass(frozen=True, slots=True)
class Fragment:
    """A rendered part of documents (one list's answer for a country), shared by every document that
    holds it; `facts` are the few values the rest of the document is computed from."""

    body: bytes
    facts: Any

    @property
    def size(self) -> int:
        return len(self.body) + RENDERED_OVERHEAD


def fragment(key: Hashable, build: Callable[[], tuple[bytes, Any]]) -> Fragment:
    """The fragment for `key` (which must hold the data version it was read at), built on a miss:
    `build` returns its bytes and facts. Fragments have a cache of their own (a quarter of
    EXPORTCTL_CACHE_MAX_BYTES), so that documents asked once (a lookup at some date) cannot
    push out the parts every other lookup is assembled from."""
    cache: DocumentCache = current_app.extensions["exportctl.parts"]
    found = cache.get(key)
    if found is None:
        found = Fragment(*build())
        cache.put(key, found)
    return found


class DocumentCache:
    """Documents by key, least recently used first out, bounded by the bytes they hold
    (EXPORTCTL_CACHE_MAX_BYTES), not by their number: a feed page weighs 100 lookups."""

    def __init__(self, max_bytes: int):
        self._cache: cachetools.LRUCache = cachetools.LRUCache(
            maxsize=max_bytes, getsizeof=lambda rendered: rendered.size
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: Hashable, value: "Rendered | Fragment") -> None:
        if value.size > self._cache.maxsize:
            return  # larger than the whole cache: served, never kept
        with self._lock:
            self._cache[key] = value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    @property
    def max_bytes(self) -> int:
        return int(self._cache.maxsize)

    @property
    def bytes(self) -> int:
        return int(self._cache.currsize)

    def __len__(self) -> int:
        return len(self._cache)


class VersionReader(OwnConnections):
    """Reads the data version on a connection of its own per thread (`OwnConnections`).

    This is the one query every lookup makes, so it skips the pool, the ORM and SQL
    compilation: a plain DBAPI cursor kept with the connection on SQLite, and on PostgreSQL a
    statement prepared once per connection and run through libpq itself (psycopg.pq), which
    costs ~28 us of CPU per read against ~40 through a psycopg cursor. Each read sees the
    latest commit, so every process agrees without coordination.
    """

    QUERY = DATA_VERSION_QUERY
    PREPARED = b"exportctl_data_version"

    def _connect(self) -> Any:
        connection = super()._connect()
        self.local.pgconn = None
        if self.engine.dialect.name == "postgresql":
            self.local.pgconn = connection.pgconn
            self._check(
                self.local.pgconn.prepare(self.PREPARED, self.QUERY.encode()),
                psycopg.pq.ExecStatus.COMMAND_OK,
            )
        else:
            self.local.cursor = connection.cursor()
        return connection

    def read(self) -> int:
        for attempt in (1, 2):
            connection = self.connection()
            try:
                pgconn = self.local.pgconn
                if pgconn is not None:
                    result = self._check(
                        pgconn.exec_prepared(self.PREPARED, []), psycopg.pq.ExecStatus.TUPLES_OK
                    )
                    return int(result.get_value(0, 0))
                cursor = self.local.cursor
                cursor.execute(self.QUERY)
                return cursor.fetchone()[0]
            except self.engine.dialect.loaded_dbapi.Error as exc:
                self.forget(connection)  # the server may have restarted: reconnect once
                if attempt == 2:
                    raise OperationalError(self.QUERY, None, exc) from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _check(result: Any, expected: psycopg.pq.ExecStatus) -> Any:
        """libpq's result, or psycopg's OperationalError with the server's message."""
        if result.status != expected:
            raise psycopg.OperationalError(result.error_message.decode(errors="replace") or "no result")
        return result


def init_app(app: Flask) -> None:
    budget = app.config["CACHE_MAX_BYTES"]
    # Documents, their parts, and whole responses replayed from them (service.replay).
    app.extensions["exportctl.documents"] = DocumentCache(budget - 2 * (budget // 4))
    app.extensions["exportctl.parts"] = DocumentCache(budget // 4)
    app.extensions["exportctl.version"] = VersionReader(app.extensions["exportctl.db"].engine)


def data_version() -> int:
    return current_app.extensions["exportctl.version"].read()


def document_version() -> int:
    """The data version the document being built will be kept under (read by
    `Blueprint.cached_response` before the view ran), so a view that needs it reads it no second
    time; outside such a view, the version read now."""
    found = g.get("document_version")
    return data_version() if found is None else found


def own_reads() -> OwnConnections:
    """The connections the data version is read on (each thread's own): a read-only view's other
    hot reads run there too (`OwnConnections.rows`), not on the request's pooled session."""
    reader: OwnConnections = current_app.extensions["exportctl.version"]
    return reader


def render(
    data: Any,
    schema=None,
    *,
    serialize: Callable[[Any], bytes] | None = None,
    etag_prefix: Callable[[Any], str] | None = None,
) -> Rendered:
    """Bytes of a document: dumped by its schema as JSON, or by `serialize` (Atom)."""
    from service.api.paging import next_page

    if isinstance(data, Body):
        body = data.body
    else:
        body = serialize(data) if serialize else json.dumps(schema.dump(data)).encode()
    digest = etag_digest(body)
    large = current_app.config.get("COMPRESS_MIN_SIZE", 1024)
    return Rendered(
        body=body,
        etag=f"{etag_prefix(data)}-{digest}" if etag_prefix else digest,
        next_page=next_page(data),
        compressible=len(body) >= large,
    )


def etag_digest(body: bytes) -> str:
    """A document's strong ETag: a 128-bit XXH3 digest of its bytes (xxhash). An ETag only has to
    tell one version of a document from another, not resist forgery, and a cryptographic digest
    (blake2b) of a 150 KB page of events cost about as much as reading the page (~110 us; XXH3
    ~2 us)."""
    return xxhash.xxh3_128_hexdigest(body)


def cached(
    key: Hashable, build: Callable[[], Any], schema=None, *, version: int | None = None, **render_options
) -> Rendered:
    """The document for `key` at the current data version (or at `version`, when the caller has
    read it), built on a miss."""
    cache: DocumentCache = current_app.extensions["exportctl.documents"]
    versioned = (key, data_version() if version is None else version)
    rendered = cache.get(versioned)
    metrics.cache_lookup(rendered is not None)
    if rendered is None:
        rendered = render(build(), schema, **render_options)
        cache.put(versioned, rendered)
    return rendered


def settled_document(
    key: Hashable, build: Callable[[], Any], settled: Callable[[Any], bool], schema=None, **render_options
) -> tuple[Rendered, bool]:
    """The document for `key` if it is settled (no write can change it), else as built now; and
    whether it is settled (kept).

    A settled document is kept under ("settled", key), with no data version: looking it up
    reads nothing from the database. One that is not settled is rendered and not kept (see
    Blueprint.cached_response)."""
    cache: DocumentCache = current_app.extensions["exportctl.documents"]
    rendered = cache.get(("settled", key))
    metrics.cache_lookup(rendered is not None)
    if rendered is not None:
        return rendered, True
    data = build()
    rendered = render(data, schema, **render_options)
    kept = settled(data)
    if kept:
        cache.put(("settled", key), rendered)
    return rendered, kept


def respond(rendered: Rendered, mimetype: str = "application/json"):
    """The document with a strong ETag; 304 when If-None-Match already has it."""
    if rendered.next_page is not None:
        g.next_page = rendered.next_page
    response_class = current_app.response_class
    compressible = rendered.compressible and current_app.config["COMPRESS_RESPONSES"]
    compressed = compressible and compression.quality(request.accept_encodings, "gzip") > 0
    etag = rendered.gzip_etag if compressed else rendered.etag
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(etag):
        response = response_class(status=304)
    else:
        response = response_class(rendered.gzip_body() if compressed else rendered.body, mimetype=mimetype)
        if compressed:
            response.headers["Content-Encoding"] = "gzip"
    if compressible:
        response.vary.add("Accept-Encoding")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response
