"""The ceiling for `make bench`: a Flask view returning fixed bytes, with no database and no schema.

run.py fetches the real response first and hands it over through the environment, so both
servers send the same body, Content-Type and cache headers and differ only in the work
done to produce them:

- BENCH_BARE_BODY: path of a file holding the body bytes
- BENCH_BARE_CONTENT_TYPE: the Content-Type header, verbatim
- BENCH_BARE_HEADERS: optional JSON object of further headers (the real ETag, Cache-Control)
- BENCH_BARE_PATH: the route to serve, the real one so that URLs differ only by port (it may hold
  a variable part, `/v1/countries/<code>`, to answer the random paths of a wrk script alike)
"""

import json
import os
from pathlib import Path

from flask import Flask, Response

BODY = Path(os.environ["BENCH_BARE_BODY"]).read_bytes()
CONTENT_TYPE = os.environ["BENCH_BARE_CONTENT_TYPE"]
HEADERS = json.loads(os.environ.get("BENCH_BARE_HEADERS") or "{}")
PATH = os.environ.get("BENCH_BARE_PATH", "/v1/countries/VN")

app = Flask(__name__)


@app.get(PATH)
def document(**_path: str) -> Response:
    # A new Response per request, as any Flask view pays for; only the content is precomputed.
    return Response(BODY, content_type=CONTENT_TYPE, headers=HEADERS)
