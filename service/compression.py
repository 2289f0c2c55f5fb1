"""Compressed responses (flask-compress) for clients that accept them.

Cached documents are gzipped once, on the first request that accepts gzip (service/api/rendering.py), and
served as they are; flask-compress compresses everything else that is large
enough (pages, uncached collections, write outcomes) and skips what is
already encoded. Every compressible response says `Vary: Accept-Encoding`.
"""

from flask import Flask, Response, request
from flask_compress import Compress
from werkzeug.datastructures import Accept

MIMETYPES = [
    "application/json",
    "application/problem+json",
    "application/atom+xml",
    "application/yaml",
    "text/html",
    "text/csv",
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

    def after_request(self, response: Response | None) -> Response:
        environ = request.environ
        sent = environ.get("HTTP_ACCEPT_ENCODING")
        accepted = request.accept_encodings
        codings = dict.fromkeys((*self.enabled_algorithms, *self.streaming_algorithms))
        ratings = {coding: quality(accepted, coding) for coding in codings}
        environ["HTTP_ACCEPT_ENCODING"] = ", ".join(
            f"{coding};q={rating}" for coding, rating in ratings.items() if rating > 0
        )
        try:
            return super().after_request(response)
        finally:
            if sent is None:
                del environ["HTTP_ACCEPT_ENCODING"]
            else:
                environ["HTTP_ACCEPT_ENCODING"] = sent


def init_app(app: Flask) -> None:
    app.config.setdefault("COMPRESS_MIMETYPES", MIMETYPES)
    app.config.setdefault("COMPRESS_MIN_SIZE", 1024)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    # flask-compress gives what it compresses its own ETag ("...:br") and answers If-None-Match
    # against it; for a streamed response only on these endpoints (the snapshot's view checks
    # the identity's ETag itself, before it starts streaming).
    app.config.setdefault("COMPRESS_STREAMING_ENDPOINT_CONDITIONAL", ["static", "snapshot.Snapshot"])
    if app.config["COMPRESS_RESPONSES"]:
        AcceptingCompress(app)
