"""`exportctl watch`: read the eCFR and the Federal Register on a schedule and propose what changed.

Each document is imported in its own transaction, so a fetch or parse failure
leaves nothing half-applied: it is logged, and the next pass tries again.
"""

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from service import clock, db
from service.domain.audit import Actor
from service.domain.errors import DomainError
from service.importers import federal_register
from service.importers.errors import FetchFailed, UnrecognisedFormat
from service.importers.fetch import Fetcher
from service.importers.proposals import ImportReport
from service.importers.runs import import_ecfr, import_fr_document

log = logging.getLogger(__name__)

WATCHER = Actor(name="importer")
MAX_PAGES = 20
FR_FIELDS = [
    "document_number",
    "citation",
    "title",
    "type",
    "action",
    "abstract",
    "publication_date",
    "effective_on",
    "dates",
    "cfr_references",
    "agencies",
    "html_url",
    "pdf_url",
    "full_text_xml_url",
    "raw_text_url",
    "regulation_id_numbers",
    "docket_ids",
]


@dataclass
class WatchResult:
    reports: list[ImportReport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _run(sessions: sessionmaker, work) -> ImportReport:
    with sessions() as session:
        db.begin_write(session)
        try:
            report = work(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return report


def _results(page, url: str) -> list:
    """A page's `results` (the API leaves them out when `count` is 0); any other shape is refused."""
    if isinstance(page, dict) and isinstance(page.get("results"), list):
        return page["results"]
    if isinstance(page, dict) and "results" not in page and page.get("count") == 0:
        return []
    raise UnrecognisedFormat(f"{url}: not a page of documents (no `results`).")


def _same_site(url: str, base: str) -> bool:
    """Only follow links (next pages, full texts) to the configured API's own host."""
    return urlsplit(url).netloc == urlsplit(base).netloc


class Watcher:
    def __init__(self, config: Mapping, sessions: sessionmaker, fetcher: Fetcher | None = None):
        self.config = config
        self.sessions = sessions
        self.fetcher = fetcher or Fetcher(config)
        self.ecfr = config["ECFR_BASE_URL"].rstrip("/")
        self.fr = config["FEDERAL_REGISTER_BASE_URL"].rstrip("/")

    def run_once(self) -> WatchResult:
        result = WatchResult()
        for step in (self.ecfr_step, self.rules_step, self.public_inspection_step):
            try:
                step(result)
            except (FetchFailed, DomainError) as exc:
                detail = getattr(exc, "detail", None) or str(exc)
                log.error("import %s failed: %s", step.__name__, detail)
                result.failures.append(f"{step.__name__}: {detail}")
        return result

    def ecfr_step(self, result: WatchResult) -> None:
        titles = self.fetcher.json(f"{self.ecfr}/api/versioner/v1/titles")
        try:
            title = next(t for t in titles["titles"] if t.get("number") == 15)
            issue_date = date.fromisoformat(title["latest_issue_date"])
        except (AttributeError, KeyError, TypeError, StopIteration, ValueError) as exc:
            raise UnrecognisedFormat(
                "The eCFR titles index has no title 15 with a latest_issue_date."
            ) from exc
        url = f"{self.ecfr}/api/versioner/v1/full/{issue_date.isoformat()}/title-15.xml"
        xml = self.fetcher.get(url, params={"part": "740"}, accept="application/xml")
        report = _run(
            self.sessions, lambda s: import_ecfr(s, xml, issue_date, actor=WATCHER, url=f"{url}?part=740")
        )
        log.info("%s", report.summary())
        result.reports.append(report)

    def _documents(self, part: int) -> list[dict]:
        since = clock.today() - timedelta(seconds=self.config["IMPORT_LOOKBACK"].total_seconds())
        params: list[tuple[str, str]] | None = [
            ("conditions[agencies][]", federal_register.BIS),
            ("conditions[cfr][title]", "15"),
            ("conditions[cfr][part]", str(part)),
            ("conditions[type][]", "RULE"),
            ("conditions[publication_date][gte]", since.isoformat()),
            ("order", "oldest"),
            ("per_page", "100"),
            *[("fields[]", name) for name in FR_FIELDS],
        ]
        url, documents = f"{self.fr}/api/v1/documents.json", []
        for _page in range(MAX_PAGES):
            page = self.fetcher.json(url, params=params)
            documents.extend(_results(page, url))
            url, params = page.get("next_page_url"), None
            if not url or not _same_site(url, self.fr):
                break
        return documents

    def _import_document(self, result: WatchResult, raw: dict, full_text_url: str | None) -> None:
        document = federal_register.parse_document(raw)
        full_text = None
        if full_text_url and _same_site(full_text_url, self.fr):
            full_text = self.fetcher.get(full_text_url, accept="application/xml")
        report = _run(self.sessions, lambda s: import_fr_document(s, document, full_text, actor=WATCHER))
        log.info("%s", report.summary())
        result.reports.append(report)

    def rules_step(self, result: WatchResult) -> None:
        seen: dict[str, dict] = {}
        for part in (740, 738):
            for raw in self._documents(part):
                if isinstance(raw, dict) and isinstance(raw.get("document_number"), str):
                    seen.setdefault(raw["document_number"], raw)
        for number, raw in seen.items():
            try:  # one document's failure is that document's, not the pass's
                self._import_document(result, raw, raw.get("full_text_xml_url"))
            except (FetchFailed, DomainError) as exc:
                detail = getattr(exc, "detail", None) or str(exc)
                log.error("import of FR document %s failed: %s", number, detail)
                result.failures.append(f"fr:{number}: {detail}")

    def public_inspection_step(self, result: WatchResult) -> None:
        """BIS filings about country groups: announced, not yet law (their text is a PDF, so a
        person reads them: each becomes a review proposal)."""
        page = self.fetcher.json(f"{self.fr}/api/v1/public-inspection-documents/current.json")
        for raw in _results(page, "public-inspection-documents/current.json"):
            if not isinstance(raw, dict):
                continue
            agencies = raw.get("agencies")
            if not isinstance(agencies, list):
                agencies = []
            about = " ".join(str(raw.get(k) or "") for k in ("title", "toc_doc", "subject_1", "subject_2"))
            if not any(isinstance(a, dict) and a.get("slug") == federal_register.BIS for a in agencies):
                continue
            if "country group" not in about.casefold():
                continue
            try:
                self._import_document(result, raw, None)
            except (FetchFailed, DomainError) as exc:
                detail = getattr(exc, "detail", None) or str(exc)
                log.error(
                    "import of public-inspection document %s failed: %s", raw.get("document_number"), detail
                )
                result.failures.append(f"fr-pi:{raw.get('document_number')}: {detail}")

    def close(self) -> None:
        self.fetcher.close()


def session_factory() -> sessionmaker[Session]:
    return db.database().sessionmaker


def watch_on_schedule(watcher: Watcher, stop: threading.Event, interval: float) -> None:
    """The importers' schedule inside the worker: a pass now, then one every `interval`, until
    `stop`. A failed pass is logged (each document is its own transaction) and the next one runs."""
    while not stop.is_set():
        try:
            result = watcher.run_once()
            for report in result.reports:
                log.info("import: %s", report.summary())
        except Exception:  # noqa: BLE001 - the schedule outlives one bad pass
            log.exception("import pass failed")
        if stop.wait(interval):
            return
