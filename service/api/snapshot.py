"""Snapshots: every entry on every list, on a date, as a streamed CSV or JSON Lines file."""

import hashlib

from flask import current_app, request
from flask.views import MethodView

from service import clock, compression, db
from service.api import Blueprint
from service.domain import snapshot
from service.schemas import ListedEntrySchema, SnapshotQuery

blp = Blueprint(
    "snapshot",
    __name__,
    url_prefix="/v1/snapshot",
    description="Bulk files: every entry on every list, on a date, as known at a moment.",
)

MIMETYPES = {"csv": "text/csv", "jsonl": "application/jsonl"}
HEADERS = {
    "ETag": {"description": "Changes with the data, the date and the format.", "schema": {"type": "string"}},
    "X-Data-Version": {"description": "The data version the rows reflect.", "schema": {"type": "integer"}},
    "X-Event-Sequence": {
        "description": "The last event the rows reflect: resume the feed with `GET /v1/events?after=` it.",
        "schema": {"type": "integer"},
    },
}


@blp.route("")
class Snapshot(MethodView):
    @blp.arguments(SnapshotQuery(), location="query", as_kwargs=True)
    @blp.doc(
        responses={
            "200": {
                "description": "Every list × country entry: status, since, evidence, sources (streamed).",
                "headers": HEADERS,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/jsonl": {"schema": {"type": "string"}},
                },
            },
            "304": {"description": "Not modified: If-None-Match names the current ETag."},
        }
    )
    @blp.doc(operationId="get_snapshot")
    def get(self, format="csv", as_of=None, known_at=None):  # noqa: A002
        """Every entry on every list on `as_of`, as known at `known_at`, as CSV or JSON Lines (streamed)."""
        as_of = as_of or clock.today()
        session = db.database().sessionmaker()
        try:
            snapshot.begin_snapshot(session)
            versions = snapshot.versions(session)
        except Exception:
            session.close()
            raise
        key = f"{versions.data_version}|{as_of}|{known_at.isoformat() if known_at else ''}|{format}"
        etag = "snapshot-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        headers = {
            "X-Data-Version": str(versions.data_version),
            "X-Event-Sequence": str(versions.event_sequence),
            "Cache-Control": "no-cache",
        }
        response_class = current_app.response_class
        sent_etag = compression.streamed_etag(etag, MIMETYPES[format])  # as compressed for this request
        if "If-None-Match" in request.headers and request.if_none_match.contains_weak(sent_etag):
            session.close()
            response = response_class(status=304, headers=headers)
            response.set_etag(sent_etag)
            return response

        def generate():
            stream = snapshot.rows(session, as_of, known_at)
            try:
                if format == "csv":
                    chunks = snapshot.csv_chunks(stream)
                else:
                    chunks = snapshot.jsonl_chunks(stream, ListedEntrySchema().dump)
                for chunk in chunks:
                    yield chunk.encode()
            finally:
                stream.close()  # a client gone mid-stream: close the cursor before the session
                session.close()

        filename = f"exportctl-snapshot-{as_of.isoformat()}.{format}"
        response = response_class(
            generate(),  # its own session: no request context needed while streaming
            mimetype=MIMETYPES[format],
            headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
        )
        # Also when the stream never starts (a client gone before the first chunk): a generator
        # closed before it ran does not run its `finally`.
        response.call_on_close(session.close)
        if format == "csv":
            response.headers["Content-Type"] = "text/csv; charset=utf-8; header=present"
        response.set_etag(etag)
        return response
