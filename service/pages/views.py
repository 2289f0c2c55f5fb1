"""The analysts' pages. Views load through the domain (as the API's do), then render a template.

Pages are cached like the API's documents: by what they show and the data
version (service.api.rendering), with strong ETags and 304s. A page holds no
per-request secret (the sign-out form, with its CSRF token, is a page of its
own), so the rendered bytes can be shared by everyone who sees the same thing.
"""

import csv
import io
import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime
from itertools import groupby
from urllib.parse import urlencode

import marshmallow as ma
from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import fields, validate
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from service import auth, clock, db, errors
from service.api.countries import resolve_country
from service.api.events import feed_filter
from service.api.rendering import cached, data_version, respond
from service.domain import feed, keys, lookups
from service.domain.countries import registry
from service.domain.errors import DomainError, InvalidInput
from service.domain.events import event_document
from service.domain.statuses import PENDING, Effect
from service.errors import flatten_messages
from service.pages import timeline
from service.pages.forms import SignInForm, SignOutForm
from service.replay import mark_replayable
from service.schemas import STATUSES, QueryInteger, TimeQuery
from service.vocabulary import Role

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

MAX_SEARCH_RESULTS = 20
RECENT_LIMIT = 50
MAX_RECENT = 200


# --- query parameters: the API's names and rules, lenient about extras -----------------------


class CountryPageQuery(TimeQuery):
    class Meta:
        unknown = ma.EXCLUDE


class ListPageQuery(TimeQuery):
    status = fields.String(validate=validate.OneOf(STATUSES))

    class Meta:
        unknown = ma.EXCLUDE


class ChangesPageQuery(ma.Schema):
    limit = QueryInteger(load_default=RECENT_LIMIT)
    country = fields.String()
    list = fields.String()

    class Meta:
        unknown = ma.EXCLUDE

    @ma.post_load
    def clamp(self, data, **_kwargs):
        data["limit"] = max(1, min(MAX_RECENT, data["limit"]))
        return data


def query(schema: ma.Schema) -> dict:
    """The query string through `schema`; an empty form field counts as absent."""
    raw = {name: value for name, value in request.args.items() if value.strip()}
    try:
        return schema.load(raw)
    except ma.ValidationError as exc:
        messages = flatten_messages(exc.messages)
        names = ", ".join(f"'{name}'" for name in messages)
        raise InvalidInput(f"Invalid query parameter {names}.", messages) from exc


def _link(endpoint: str, params: dict, **values) -> str:
    """URL of `endpoint` with the non-empty `params` as its query string (the API's names)."""
    return url_for(endpoint, **values) + _query_string(params)


def _query_string(params: dict) -> str:
    clean = {k: _param(v) for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(clean) if clean else ""


@bp.app_template_filter("iso_moment")
def iso_moment(value) -> str:
    """A moment as the API writes it (RFC 3339, Z for UTC); '' for none."""
    return "" if value is None else _param(value)


def _param(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# --- who is looking -------------------------------------------------------------------------


def _session_principal() -> keys.Principal | None:
    key_id = session.get("key_id")
    if not isinstance(key_id, int):
        return None
    principal = keys.active_principal(db.session(), key_id)
    if principal is None:  # revoked since sign-in
        session.clear()
    return principal


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("pages.home")


@bp.before_request
def _require_sign_in():
    g.page_principal = _session_principal() if "key_id" in session else None
    if g.page_principal is None and "Authorization" in request.headers:
        g.page_principal = auth.current_principal()
    if request.endpoint in ("pages.sign_in", "pages.sign_out"):
        return None
    if current_app.config["READS_REQUIRE_KEY"] and (
        g.page_principal is None or not g.page_principal.may(Role.READER)
    ):
        return redirect(url_for("pages.sign_in", next=request.full_path.rstrip("?")))
    return None


@bp.teardown_request
def _forget_request_state(_exc: BaseException | None) -> None:
    """Per-request values in `g` (as service.auth does): where an app context outlives a request
    (pytest-flask pushes one per test), a CSRF token cached for a session that has since changed
    must not be reused."""
    g.pop("page_principal", None)
    g.pop("csrf_token", None)


@bp.app_context_processor
def _page_globals():
    return {
        "reads_require_key": current_app.config["READS_REQUIRE_KEY"],
        "status_names": timeline.LEGEND_NAMES,
    }


# --- rendering ------------------------------------------------------------------------------


# Pages load nothing from elsewhere and run no script: say so to the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@bp.after_request
def _page_headers(response):
    if g.get("page_principal") is not None or g.get("csrf_token") is not None:
        # It names who is signed in, or carries a form token for this session (the sign-in
        # form): a document or an error page alike. No shared cache keeps it.
        response.headers["Cache-Control"] = "private, no-cache"
        response.vary.add("Cookie")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _page_response(rendered, mimetype: str, filename: str | None = None):
    response = respond(rendered, mimetype=mimetype)
    response.vary.add("Cookie")
    # Only for whoever may read it. (A page that names who is signed in: _page_headers.)
    if current_app.config["READS_REQUIRE_KEY"]:
        response.headers["Cache-Control"] = "private, no-cache"
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def versioned(key: tuple, build: Callable[[], str]):
    """A page's document at the data version and day (pages show today), and its response
    replayable to the next keyless request for it (service.replay) while they hold."""
    version, today = data_version(), clock.today()
    rendered = cached((*key, today), build, serialize=str.encode, version=version)
    mark_replayable(version, today)
    return rendered


def render_page(key: tuple, template: str, context: Callable[[], dict]):
    """A cached page: rendered once per data version and day, per signed-in name."""
    principal = g.get("page_principal")
    viewer = principal.name if principal else None

    def build():
        return render_template(template, viewer=viewer, **context())

    return _page_response(versioned(("page", template, key, viewer), build), "text/html")


def _csv_cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas; quote those."""
    text = "" if value is None else _param(value) if isinstance(value, date) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(key: tuple, filename: str, header: list[str], rows: Callable[[], Iterable[list]]):
    def build():
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows([_csv_cell(v) for v in row] for row in rows())
        return out.getvalue()

    return _page_response(versioned(("csv", key), build), "text/csv", filename)


def sources_text(sources: list[dict]) -> str:
    return " | ".join(
        " ".join(
            part
            for part in (s.get("title"), f"[{s['citation']}]" if s.get("citation") else None, s.get("url"))
            if part
        )
        for s in sources or []
    )


def error_page(status: int, title: str, detail: str, **context):
    principal = g.get("page_principal")
    body = render_template(
        "pages/error.html",
        status=status,
        title=title,
        detail=detail,
        viewer=principal.name if principal else None,
        **context,
    )
    return current_app.response_class(body, status=status, mimetype="text/html")


@bp.errorhandler(DomainError)
@bp.errorhandler(errors.EdgeError)
def _known_error(error: DomainError | errors.EdgeError):
    """The API's mapping (service/errors.py) decides the status; the page shows it."""
    kind = errors.problem_kind(error)
    response = error_page(
        kind.status,
        kind.title,
        error.detail,
        suggestions=error.extensions.get("suggestions") or [],
        field_errors=error.extensions.get("errors") or {},
    )
    for name, value in getattr(error, "headers", {}).items():
        response.headers[name] = value
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    response = error_page(error.code or 500, error.name, error.description or "")
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _unavailable(error: Exception):
    log.warning("database unavailable: %s", error.__class__.__name__, exc_info=error)
    response = error_page(503, "Service unavailable", "The database is unreachable; try again shortly.")
    response.headers["Retry-After"] = errors.RETRY_AFTER_UNAVAILABLE
    return response


@bp.errorhandler(DataError)
def _data_error(error: DataError):
    return error_page(422, "Invalid request", "A value in the request is not acceptable.")


@bp.errorhandler(Exception)
def _unexpected(error: Exception):
    if errors.database_unavailable(error):
        return _unavailable(error)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_page(500, "Something went wrong", "The service failed unexpectedly; the error is logged.")


# --- home and search ------------------------------------------------------------------------


def _list_codes() -> dict[str, dict]:
    return {cl.id: lookups.list_ref(cl) for cl in lookups.all_lists(db.session())}


def _change_rows(documents: list[dict]) -> list[dict]:
    """Feed events as table rows (status changes carry a country and a list; list events a list)."""
    rows = []
    for document in documents:
        data = document["data"]
        is_change = document["type"] == "entry.status_changed"
        rows.append(
            {
                "id": document["id"],
                "sequence": document["sequence"],
                "type": document["type"],
                "occurred_at": document["occurred_at"],
                "country": data.get("country") if is_change else None,
                "list": data.get("list") if is_change else {k: data.get(k) for k in ("id", "code", "name")},
                "from_status": data.get("from_status") if is_change else None,
                "status": data.get("status") if is_change else None,
                "effective_on": data.get("effective_on") if is_change else None,
                "expected_effective_on": data.get("expected_effective_on") if is_change else None,
                "sources": data.get("sources") or [],
            }
        )
    return rows


@bp.get("/")
def home():
    today = clock.today()

    def context():
        session_ = db.session()
        overview = lookups.countries_overview(session_, today, None)
        pending = [c for c in overview if c["pending"]]
        recent = feed.latest_events(session_, 8, feed.FeedFilter(type="entry.status_changed"))
        return {
            "today": today,
            "countries": sorted(registry(), key=lambda c: c.display_name),
            "pending": pending,
            "restricted_count": sum(1 for c in overview if c["restrictions_apply"]),
            "lists": _list_codes(),
            "recent": _change_rows([event_document(e) for e in recent]),
        }

    return render_page(("home", today), "pages/home.html", context)


@bp.get("/search")
def search():
    text = request.args.get("q", "").strip()[:200]
    if not text:
        return redirect(url_for("pages.home"))
    country = registry().resolve(text)
    matches = [country] if country else registry().suggest(text, limit=MAX_SEARCH_RESULTS)
    if len(matches) == 1:
        return redirect(url_for("pages.country", ref=matches[0].alpha_2))
    return render_page(("search", text), "pages/search.html", lambda: {"q": text, "matches": matches})


# --- a country ------------------------------------------------------------------------------


def _verdict(status: dict) -> dict:
    entries = status["entries"]
    return {
        "restrictions_apply": status["restrictions_apply"],
        "restricting": [e for e in entries if e["restrictions_apply"]],
        "unknown_restrictive": [
            e
            for e in entries
            if e["restrictions_apply"] is None and e["list"]["effect"] == Effect.RESTRICTIVE
        ],
        "pending": [e for e in entries if e["status"] in PENDING],
    }


def _pending_groups(entries: list[dict]) -> list[list[dict]]:
    """Pending entries announced together (same status, dates and sources) share one banner."""
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        if e["status"] in PENDING:
            key = (
                e["status"],
                e["pending"]["announced_on"],
                e["pending"]["expected_effective_on"],
                tuple(s["url"] for s in e["sources"]),
            )
            groups.setdefault(key, []).append(e)
    return list(groups.values())


def _by_jurisdiction(entries: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """Lists by jurisdiction; in each, those with a recorded status first (the timeline's order)."""
    groups = []
    ordered = sorted(
        entries, key=lambda e: (e["list"]["jurisdiction"], e["basis"] != "recorded_change", e["list"]["id"])
    )
    for code, items in groupby(ordered, key=lambda e: e["list"]["jurisdiction"]):
        place = registry().get(code)
        groups.append((code, place.display_name if place else code, list(items)))
    return groups


@bp.get("/countries/<ref>")
def country(ref):
    args = query(CountryPageQuery())
    found = resolve_country(ref)
    if ref != found.alpha_2:
        return redirect(_link("pages.country", args, ref=found.alpha_2), 301)
    today = clock.today()
    as_of = args.get("as_of") or today
    known_at = args.get("known_at")

    def context():
        session_ = db.session()
        status = lookups.country_status(session_, found, as_of, known_at)
        history = lookups.full_country_history(session_, found, known_at)
        params = {"as_of": args.get("as_of"), "known_at": known_at}
        return {
            "country": status["country"],
            "status": status,
            "verdict": _verdict(status),
            "pending_groups": _pending_groups(status["entries"]),
            "groups": _by_jurisdiction(status["entries"]),
            "history": history,
            "timeline": timeline.country_timeline(session_, found, as_of, known_at, today),
            "as_of": as_of,
            "known_at": known_at,
            "today": today,
            "explicit_as_of": args.get("as_of"),
            "json_url": _link("countries.CountryStatus", params, ref=found.alpha_2),
            "history_json_url": _link("countries.CountryHistory", {"known_at": known_at}, ref=found.alpha_2),
            "csv_url": _link("pages.country_csv", params, ref=found.alpha_2),
        }

    key = ("country", found.alpha_2, as_of, known_at, args.get("as_of"))
    return render_page(key, "pages/country.html", context)


@bp.get("/countries/<ref>/statuses.csv")
def country_csv(ref):
    args = query(CountryPageQuery())
    found = resolve_country(ref)
    as_of = args.get("as_of") or clock.today()
    known_at = args.get("known_at")

    def rows():
        status = lookups.country_status(db.session(), found, as_of, known_at)
        for e in status["entries"]:
            pending = e["pending"] or {}
            yield [
                found.alpha_2,
                found.display_name,
                e["list"]["jurisdiction"],
                e["list"]["id"],
                e["list"]["code"],
                e["list"]["name"],
                e["status"],
                e["restrictions_apply"],
                e["since"],
                pending.get("announced_on"),
                pending.get("expected_effective_on"),
                e["note"],
                sources_text(e["sources"]),
                as_of,
                known_at,
            ]

    header = [
        "country",
        "country_name",
        "jurisdiction",
        "list_id",
        "list_code",
        "list_name",
        "status",
        "restrictions_apply",
        "since",
        "announced_on",
        "expected_effective_on",
        "note",
        "sources",
        "as_of",
        "known_at",
    ]
    filename = f"exportctl-{found.alpha_2}-{as_of.isoformat()}.csv"
    return render_csv(("country", found.alpha_2, as_of, known_at), filename, header, rows)


# --- lists ----------------------------------------------------------------------------------


@bp.get("/lists")
def lists():
    def context():
        documents = [lookups.list_document(cl) for cl in lookups.all_lists(db.session())]
        return {"lists": documents}

    return render_page(("lists",), "pages/lists.html", context)


@bp.get("/lists/<list_id>")
def control_list(list_id):
    args = query(ListPageQuery())
    today = clock.today()
    as_of = args.get("as_of") or today
    known_at = args.get("known_at")
    status = args.get("status")

    def context():
        session_ = db.session()
        found = lookups.get_list(session_, list_id)
        members = lookups.list_entries(session_, found, as_of, known_at)
        counts = {s: sum(1 for m in members if m["status"] == s) for s in STATUSES}
        shown = [m for m in members if status is None or m["status"] == status]
        history = feed.latest_events(
            session_, 30, feed.FeedFilter(list_id=found.id, type="entry.status_changed")
        )
        params = {"as_of": args.get("as_of"), "known_at": known_at, "status": status}
        return {
            "list": lookups.list_document(found),
            "members": shown,
            "counts": counts,
            "total": len(members),
            "history": _change_rows([event_document(e) for e in history]),
            "as_of": as_of,
            "known_at": known_at,
            "status": status,
            "today": today,
            "explicit_as_of": args.get("as_of"),
            "json_url": _link("lists.ListDetail", {}, list_id=found.id),
            "entries_json_url": _link("lists.ListEntries", params, list_id=found.id),
            "events_json_url": _link("events.Events", {"list": found.id}),
            "csv_url": _link("pages.list_csv", params, list_id=found.id),
            "member_query": _query_string({"as_of": args.get("as_of"), "known_at": known_at}),
        }

    key = ("list", list_id, as_of, known_at, status, args.get("as_of"))
    return render_page(key, "pages/list.html", context)


@bp.get("/lists/<list_id>/members.csv")
def list_csv(list_id):
    args = query(ListPageQuery())
    as_of = args.get("as_of") or clock.today()
    known_at = args.get("known_at")
    status = args.get("status")
    session_ = db.session()
    found = lookups.get_list(session_, list_id)

    def rows():
        for m in lookups.list_entries(session_, found, as_of, known_at):
            if status is not None and m["status"] != status:
                continue
            pending = m["pending"] or {}
            yield [
                found.id,
                found.code,
                m["country"]["alpha_2"],
                m["country"]["name"],
                m["status"],
                m["restrictions_apply"],
                m["since"],
                pending.get("announced_on"),
                pending.get("expected_effective_on"),
                m["note"],
                sources_text(m["sources"]),
                as_of,
                known_at,
            ]

    header = [
        "list_id",
        "list_code",
        "country",
        "country_name",
        "status",
        "restrictions_apply",
        "since",
        "announced_on",
        "expected_effective_on",
        "note",
        "sources",
        "as_of",
        "known_at",
    ]
    filename = f"exportctl-{found.id}-{as_of.isoformat()}.csv"
    return render_csv(("list", found.id, as_of, known_at, status), filename, header, rows)


# --- recent changes -------------------------------------------------------------------------


def _recent(args: dict) -> list[dict]:
    filters = feed_filter(args)
    events = feed.latest_events(db.session(), args["limit"], filters)
    return _change_rows([event_document(e) for e in events])


@bp.get("/changes")
def changes():
    args = query(ChangesPageQuery())
    key = tuple(sorted((k, str(v)) for k, v in args.items()))
    api_args = {k: v for k, v in args.items() if k in ("country", "list")}

    def context():
        rows = _recent(args)
        return {
            "rows": rows,
            "args": args,
            "lists": _list_codes(),
            "json_url": _link("events.Events", api_args),
            "atom_url": _link("events.EventsAtom", api_args),
            "csv_url": _link("pages.changes_csv", args),
        }

    return render_page(("changes", key), "pages/changes.html", context)


@bp.get("/changes.csv")
def changes_csv():
    args = query(ChangesPageQuery())
    key = tuple(sorted((k, str(v)) for k, v in args.items()))

    def rows():
        for r in _recent(args):
            yield [
                r["id"],
                r["occurred_at"],
                r["type"],
                (r["country"] or {}).get("alpha_2"),
                (r["list"] or {}).get("id"),
                r["from_status"],
                r["status"],
                r["effective_on"],
                r["expected_effective_on"],
                sources_text(r["sources"]),
            ]

    header = [
        "event",
        "occurred_at",
        "type",
        "country",
        "list_id",
        "from_status",
        "status",
        "effective_on",
        "expected_effective_on",
        "sources",
    ]
    return render_csv(("changes", key), "exportctl-changes.csv", header, rows)


# --- signing in (only needed when reads require a key) ---------------------------------------


@bp.route("/signin", methods=["GET", "POST"])
def sign_in():
    form = SignInForm()
    if request.method == "GET":
        form.next.data = _safe_next(request.args.get("next"))
    status = 200
    error = None
    if form.validate_on_submit():
        principal = keys.authenticate(db.session(), form.key.data.strip())
        if principal is not None and principal.may(Role.READER):
            session.clear()
            session["key_id"] = principal.key_id
            return redirect(_safe_next(form.next.data), 303)
        status, error = 401, "That key is not valid (unknown, revoked or malformed)."
    elif request.method == "POST":
        if "csrf_token" in form.errors:
            status, error = 400, "The form expired or did not come from this site; please try again."
        else:
            status, error = 422, "Enter your API key."
    form.key.data = ""
    body = render_template("pages/signin.html", form=form, error=error, viewer=None)
    return current_app.response_class(body, status=status, mimetype="text/html")


@bp.route("/signout", methods=["GET", "POST"])
def sign_out():
    form = SignOutForm()
    if form.validate_on_submit():
        session.clear()
        after = "pages.sign_in" if current_app.config["READS_REQUIRE_KEY"] else "pages.home"
        return redirect(url_for(after), 303)
    status = 400 if request.method == "POST" else 200
    principal = g.get("page_principal")
    body = render_template(
        "pages/signout.html",
        form=form,
        error="The form expired or did not come from this site; please try again." if status == 400 else None,
        viewer=principal.name if principal else None,
    )
    return current_app.response_class(body, status=status, mimetype="text/html")
