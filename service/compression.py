"""Compressed responses (flask-compress) for clients that accept them.

Cached documents are gzipped once, on the first request that accepts gzip (service/api/rendering.py), and
served as they are; flask-compress compresses everything else that is large
enough (pages, uncached collections, write outcomes) and skips what is
already encoded. Every compressible response says `Vary: Accept-Encoding`.
"""

from flask import Flask
from flask_compress import Compress

MIMETYPES = [
    "application/json",
    "application/problem+json",
    "application/atom+xml",
    "application/yaml",
    "text/html",
    "text/csv",
]  # not static files (CSS): flask-compress would read them without closing the file


def init_app(app: Flask) -> None:
    app.config.setdefault("COMPRESS_MIMETYPES", MIMETYPES)
    app.config.setdefault("COMPRESS_MIN_SIZE", 1024)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    if app.config["COMPRESS_RESPONSES"]:
        Compress(app)
