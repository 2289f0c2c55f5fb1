"""Compressed responses (flask-compress) for clients that accept them.

Cached documents are gzipped once, on the first request that accepts gzip (service/api/rendering.py), and
served as they are; flask-compress compresses everything else that is large
enough (pages, uncached collections, write outcomes) and skips what is
already encoded. Every compressible response says `Vary: Accept-Encoding`.
"""

from flask import Flask, Response, current_app, request
from flask_compress import Compress
from flask_compress.flask_compress import _choose_algorithm  # its rule, so a view can tell ahead
from werkzeug.datastructures import Accept

MIMETYPES = [
    "application/json",
    "application/problem+json",
    "application/atom+xml",
    "application/yaml",
    "text/html",
    "text/csv",
    "application/jsonl",  # the snapshot's JSON Lines
]  # not static files (CSS): flask-compress would read them without closing the file


# RFC 9110 8.4.1.3: a recipient SHOULD consider "x-gzip" to be equivalent to "gzip".
ALIASES = {"gzip": "x-gzip"}


def quality(accepted: Accept, coding: str) -> float:
    """How the client rates `coding` (RFC 9110 12.5.3): as it names it, or by its alias, or by
    `*`. Werkzeug matches names alone, so `x-gzip;q=0, *` rated gzip 1 (by `*`)."""
    named = {value.lower(): rating for value, rating in accepted}
    for name in (coding, ALIASES.get(coding)):
        if name in named:
            return named[name]
    return accepted[coding]


class AcceptingCompress(Compress):
    """flask-compress, shown only the codings the client accepts (a quality above 0).

    flask-compress 1.25 picks the best-rated coding even when its rating is 0: `gzip;q=0` got
    gzip, which RFC 9110 (12.5.3) calls not acceptable, and `gzip;q=0, *` got gzip too. Werkzeug
    reads the header right (`request.accept_encodings`), so flask-compress is handed the
    acceptable codings with their qualities, in its place, while it chooses.
    """

    def acceptable(self) -> str:
        """The request's Accept-Encoding as flask-compress is shown it: the codings it offers that
        the client accepts, with their ratings."""
        accepted = request.accept_encodings
        codings = dict.fromkeys((*self.enabled_algorithms, *self.streaming_algorithms))
        ratings = {coding: quality(accepted, coding) for coding in codings}
        return ", ".join(f"{coding};q={rating}" for coding, rating in ratings.items() if rating > 0)

    def streamed_coding(self, mimetype: str) -> str | None:
        """The coding `after_request` will give a streamed response of `mimetype` to this request
        (None: none), chosen by flask-compress's own rule."""
        if mimetype not in self.compress_mimetypes_set or not current_app.config["COMPRESS_STREAMS"]:
            return None
        return _choose_algorithm(self.streaming_algorithms, self.acceptable())

    def after_request(self, response: Response | None) -> Response:
        environ = request.environ
        sent = environ.get("HTTP_ACCEPT_ENCODING")
        environ["HTTP_ACCEPT_ENCODING"] = self.acceptable()
        try:
            return super().after_request(response)
        finally:
            if sent is None:
                del environ["HTTP_ACCEPT_ENCODING"]
            else:
                environ["HTTP_ACCEPT_ENCODING"] = sent


def streamed_etag(etag: str, mimetype: str) -> str:
    """The ETag a streamed response with `etag` will be sent with to this request: flask-compress
    gives a response it compresses its own (`"<etag>:br"`). A streamed view answers If-None-Match
    against it before it starts: flask-compress would check it only after compressing, by
    counting the whole body first (werkzeug's make_conditional), which ends the streaming."""
    compress: AcceptingCompress | None = current_app.extensions.get("exportctl.compress")
    coding = compress.streamed_coding(mimetype) if compress is not None else None
    return f"{etag}:{coding}" if coding else etag


def init_app(app: Flask) -> None:
    app.config.setdefault("COMPRESS_MIMETYPES", MIMETYPES)
    app.config.setdefault("COMPRESS_MIN_SIZE", 1024)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    # Streams (the snapshot) are not offered br: flask-compress never flushes its brotli
    # compressor, which holds ~8 MB before writing anything, so a br stream left in one piece at
    # its end. zstd and deflate write as they go (gzip is not a streaming coding there).
    app.config.setdefault("COMPRESS_ALGORITHM_STREAMING", ["zstd", "deflate"])
    if app.config["COMPRESS_RESPONSES"]:
        app.extensions["exportctl.compress"] = AcceptingCompress(app)
