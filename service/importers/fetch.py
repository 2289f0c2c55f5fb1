"""Reading the regulator's APIs: one configured `requests.Session` with timeouts, retries with
exponential backoff (honouring Retry-After) and a polite User-Agent."""

import json
import logging
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from service.importers.errors import FetchFailed

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024 * 1024  # part 740 is a few MB; anything far larger is not what we asked for
RETRY_STATUSES = (429, 500, 502, 503, 504)


def importer_session(config: Mapping) -> requests.Session:
    backoff = config["IMPORT_BACKOFF"].total_seconds()
    retry = Retry(
        total=int(config["IMPORT_RETRIES"]),
        backoff_factor=backoff,
        backoff_max=max(backoff * 32, 1.0),
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": config["IMPORT_USER_AGENT"]})
    return session


class Fetcher:
    """GETs through one session; any failure (after the retries) is a FetchFailed, logged."""

    def __init__(self, config: Mapping, session: requests.Session | None = None):
        self.session = session or importer_session(config)
        self.timeout = (
            config["IMPORT_CONNECT_TIMEOUT"].total_seconds(),
            config["IMPORT_READ_TIMEOUT"].total_seconds(),
        )

    def get(self, url: str, *, params: Any = None, accept: str = "*/*") -> bytes:
        try:
            response = self.session.get(url, params=params, timeout=self.timeout, headers={"Accept": accept})
        except requests.RequestException as exc:
            log.error("fetch failed after retries: GET %s: %s", url, exc)
            raise FetchFailed(f"GET {url}: {exc.__class__.__name__}: {exc}") from exc
        with response:
            if response.status_code != 200:
                log.error("fetch failed after retries: GET %s: HTTP %s", response.url, response.status_code)
                raise FetchFailed(f"GET {response.url}: HTTP {response.status_code}")
            body = response.content
        if len(body) > MAX_BYTES:
            raise FetchFailed(f"GET {url}: the response is larger than {MAX_BYTES} bytes")
        return body

    def json(self, url: str, *, params: Any = None) -> Any:
        body = self.get(url, params=params, accept="application/json")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise FetchFailed(f"GET {url}: the response is not JSON") from exc

    def close(self) -> None:
        self.session.close()
