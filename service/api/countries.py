"""Countries: one country's status on every list, its history, and the overview of all."""

import bisect
import functools
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from flask import current_app, json
from flask.views import MethodView
from sqlalchemy import inspect, select
from sqlalchemy.orm import Mapper, Session

from service import clock, db
from service.api import Blueprint
from service.api.paging import page
from service.api.rendering import Body, document_version, fragment, own_reads
from service.domain import freshness, lookups
from service.domain.countries import Country, registry
from service.domain.errors import InvalidInput, UnknownCountry, UnknownList
from service.models import ControlList, Treatment
from service.schemas import (
    ChangePage,
    CountriesQuery,
    CountryOverviewPage,
    CountryStatusQuery,
    CountryStatusSchema,
    HistoryQuery,
    StandingSchema,
    encode_cursor,
)

blp = Blueprint(
    "countries",
    __name__,
    url_prefix="/v1/countries",
    description="Countries and their status on every control list.",
)

REF_PARAMETER = {
    "in": "path",
    "name": "ref",
    "required": True,
    "description": "Alpha-2, alpha-3 or numeric ISO 3166-1 code, or a name, in any case: "
    "`VN`, `vnm`, `704`, `Viet Nam`, `Vietnam`.",
    "schema": {"type": "string", "minLength": 1},
    "examples": {"alpha-2": {"value": "VN"}, "name": {"value": "Viet Nam"}, "numeric": {"value": "704"}},
}


def resolve_country(ref: str) -> Country:
    country = registry().resolve(ref)
    if country is None:
        suggestions = [
            {"alpha_2": c.alpha_2, "name": c.display_name, "href": f"/v1/countries/{c.alpha_2}"}
            for c in registry().suggest(ref)
        ]
        raise UnknownCountry(
            f"No country matches {ref!r}. Use an ISO 3166-1 code or a country name.",
            suggestions=suggestions,
        )
    return country


def query_country(ref: str, field: str) -> Country:
    """The country a query parameter names; an unknown one is a 422 naming the parameter (with
    the close matches), not a 404: the resource asked for exists, its filter is wrong."""
    try:
        return resolve_country(ref)
    except UnknownCountry as exc:
        message = f"Invalid query parameter '{field}'."
        raise InvalidInput(message, {field: [exc.detail]}, **exc.extensions) from exc


@blp.route("")
class Countries(MethodView):
    @blp.arguments(CountriesQuery(), location="query", as_kwargs=True)
    @blp.cached_response(CountryOverviewPage)
    @blp.doc(operationId="list_countries")
    def get(self, limit, cursor=None, as_of=None, known_at=None, restricted=None, pending=None):
        """Every country, with a summary: restricted anywhere? anything pending?"""
        overview = lookups.countries_overview(db.session(), as_of or clock.today(), known_at)
        if restricted is not None:
            overview = [c for c in overview if bool(c["restrictions_apply"]) == restricted]
        if pending is not None:
            overview = [c for c in overview if bool(c["pending"]) == pending]
        return page(overview, lambda c: c["country"]["alpha_2"], limit, cursor)


def resolve_lists(session: Session, refs: list[str] | None, field: str, *, body: bool) -> list[str] | None:
    """The ids of the lists `refs` names (ids or codes); an unknown one is a 422 naming `field`
    (in a body, with the item's index: `lists.1`)."""
    if refs is None:
        return None
    ids: list[str] = []
    for index, ref in enumerate(refs):
        try:
            found = lookups.find_list(session, ref).id
        except UnknownList as exc:
            name = f"{field}.{index}" if body else field
            where = "body field" if body else "query parameter"
            raise InvalidInput(f"Invalid {where} '{name}'.", {name: [exc.detail]}, **exc.extensions) from exc
        if found not in ids:
            ids.append(found)
    return ids


def country_answer(
    session: Session,
    country: Country,
    as_of: date,
    known_at: datetime | None,
    list_ids: list[str] | None,
    version: int | None = None,
) -> dict[str, Any]:
    """The answer of `GET /v1/countries/{ref}` (receipts sign this same answer). `version`: the
    data version read before `session` read anything, which lets the lists' freshness be reused."""
    answer = lookups.country_status(session, country, as_of, known_at, list_ids)
    answer["lists_checked"] = [
        checked
        for checked in lists_checked(session, version, clock.utcnow(), known_at)
        if list_ids is None or checked["list_id"] in list_ids
    ]
    return answer


STANDING = StandingSchema()
STATUS = CountryStatusSchema()
DATES = CountryStatusSchema(only=("as_of", "known_at"))
SUMMARY = CountryStatusSchema(exclude=("country", "entries", "lists_checked"))


def country_body(
    session: Session,
    country: Country,
    as_of: date,
    known_at: datetime | None,
    list_ids: list[str] | None,
    version: int,
) -> Body:
    """`country_answer` rendered: the same bytes as dumping it, from what decides each list's
    answer (`lookups.Decision`). Documents differ between dates and moments only where their
    decisions do: the document is kept, once per data version, day and decisions, with its
    `as_of` and `known_at` cut out, and each list's answer once per decision; a date that comes
    to decisions seen before costs only the reads that decide them."""
    lists, treatments = versioned_facts(session, version)
    if list_ids is not None:
        lists = [cl for cl in lists if cl.id in list_ids]
    changes = lookups.changes_at(session, [country.alpha_2], as_of, known_at, treatments, own_reads())
    decided = [(cl, *changes.decision(cl, country.alpha_2, as_of, known_at)) for cl in lists]
    dates = json.dumps(DATES.dump({"as_of": as_of, "known_at": known_at})).encode()[1:-1]
    # As known at a past moment, the lists' checks are those known then; the document is kept with
    # none (its last field, `[]`), and they are put in: they vary with the moment as decisions do not.
    known = known_at is not None
    key = (
        "country",
        version,
        clock.today(),
        country.alpha_2,
        None if list_ids is None else tuple(cl.id for cl in lists),
        tuple(
            (treatment.id if treatment else None, decision.key) for _cl, treatment, _for, decision in decided
        ),
        known,
    )

    def build() -> tuple[bytes, int]:
        body = _assemble(session, country, as_of, known_at, list_ids, version, decided, known)
        where = body.find(dates)  # the only `"as_of":` outside a string, as the document's second key
        assert where > 0, "a country's document holds its as_of and known_at after its country"
        assert not known or body.endswith(b"[]}"), "a country's document ends with its lists' checks"
        return body[:where] + body[where + len(dates) :], where

    template = fragment(key, build)
    body = template.body[: template.facts] + dates + template.body[template.facts :]
    if known_at is not None:
        checks = _checks_json(version, _known_checks(session, version, known_at, list_ids))
        body = body[: -len(b"[]}")] + checks + b"}"
    return Body(body)


ANY_COUNTRY = "@@"  # stands for the country in a list's answer kept for every country (not a code)


def _assemble(session, country, as_of, known_at, list_ids, version, decided, known) -> bytes:
    """The document of `country_body`, from each list's answer rendered once per decision."""
    answers, facts = [], []
    for control_list, treatment, answered_for, decision in decided:
        # The decision (with the treatment) decides all but the country an answer links to
        # (`links.entry`), so the answer is kept with that cut out, for every country alike.
        key: tuple[Any, ...] = (version, control_list.id, treatment.id if treatment else None, decision.key)
        found = fragment(key, functools.partial(_answer, control_list, treatment, decision, ANY_COUNTRY))
        if found.facts["cut"] is None:  # the rare answer that quotes its own link: kept whole, per country
            found = fragment(
                (*key, answered_for),
                functools.partial(_answer, control_list, treatment, decision, answered_for),
            )
            answers.append(found.body)
        else:
            cut = found.facts["cut"]
            answers.append(found.body[:cut] + answered_for.encode() + found.body[cut:])
        facts.append(found.facts)
    summary = lookups.status_summary(country, as_of, known_at, facts)
    # The document's fields in its schema's order: the small ones dumped here, the country and
    # the lists' checks as dumped once (per country; per data version, day and lists).
    dumped = {
        **SUMMARY.dump(summary),
        "country": _dumped_country(country.alpha_2),
        "entries": [],
        "lists_checked": _dumped_checks(session, version, list_ids, known),
    }
    body = json.dumps({name: dumped[name] for name in STATUS.fields}).encode()
    # The app's separators (compact or not) around and between the entries: `"entries": []`, `, `.
    empty = json.dumps({"entries": []}).encode()[1:-1]
    comma = json.dumps([0, 0]).encode()[2:-2]
    entries = empty[:-1] + comma.join(answers) + b"]"
    return body.replace(empty, entries, 1)


@functools.lru_cache(maxsize=512)
def _dumped_country(alpha_2: str) -> dict[str, Any]:
    country = registry().get(alpha_2)
    assert country is not None  # asked only for a country the registry resolved
    return STATUS.fields["country"].serialize("country", {"country": lookups.country_summary(country)})


def _dumped_checks(session: Session, version: int, list_ids: list[str] | None, known: bool) -> list[Any]:
    """The lists' checks dumped: today's (kept per data version, day and lists), or none when the
    document is as known at a moment (`country_body` puts that moment's in)."""
    if known:
        return []
    key = ("checked", version, clock.today(), None if list_ids is None else tuple(list_ids))

    def dump() -> tuple[bytes, list[dict[str, Any]]]:
        checked = [
            each
            for each in lists_checked(session, version, clock.utcnow())
            if list_ids is None or each["list_id"] in list_ids
        ]
        return b"", _serialized_checks(checked)

    return fragment(key, dump).facts


def _serialized_checks(checked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return STATUS.fields["lists_checked"].serialize("lists_checked", {"lists_checked": checked})


KnownChecks = tuple[tuple[str, datetime | None, bool], ...]  # (list id, checked_at, stale) per list


def _checks_json(version: int, checks: KnownChecks) -> bytes:
    """`checks` as the document's `lists_checked` writes them, kept per data version and checks."""

    def dump() -> tuple[bytes, None]:
        checked = [{"list_id": i, "checked_at": at, "stale": stale} for i, at, stale in checks]
        return json.dumps(_serialized_checks(checked)).encode(), None

    return fragment(("checks json", version, checks), dump).body


def _known_checks(
    session: Session, version: int, known_at: datetime, list_ids: list[str] | None
) -> KnownChecks:
    return tuple(
        (each["list_id"], each["checked_at"], each["stale"])
        for each in lists_checked(session, version, known_at, known_at)
        if list_ids is None or each["list_id"] in list_ids
    )


def _answer(control_list, treatment, decision, answered_for: str) -> tuple[bytes, dict[str, Any]]:
    """A list's answer rendered, and its facts: what the country's summary needs, and `cut`: where
    the country's code goes, when it is rendered for ANY_COUNTRY (None otherwise, or when the
    link cannot be told apart from another string of the answer)."""
    document = lookups.decided_answer(control_list, treatment, answered_for, decision)
    body = json.dumps(STANDING.dump(document)).encode()
    facts: dict[str, Any] = {key: document[key] for key in ("status", "restrictions_apply")}
    facts["list"] = {"id": control_list.id, "effect": control_list.effect}
    facts["cut"] = None
    if answered_for == ANY_COUNTRY:
        link = json.dumps(lookups.entry_path(control_list.id, ANY_COUNTRY)).encode()[:-1]  # `"/v1/…/@@`
        if body.count(link) == 1:
            start = body.index(link) + len(link) - len(ANY_COUNTRY)
            facts["cut"] = start
            body = body[:start] + body[start + len(ANY_COUNTRY) :]
    return body, facts


def versioned_facts(session: Session, version: int) -> tuple[list[Any], list[Any]]:
    """Every list (by jurisdiction, then id) and every treatment, read once per data version, as
    plain read-only snapshots of their columns (shared by the threads of this process; reading an
    ORM object's attribute costs ten times as much, and a lookup decides on 19 lists)."""
    cache = current_app.extensions.setdefault("exportctl.versioned_facts", {})
    found = cache.get(version)
    if found is None:
        lists = lookups.by_jurisdiction(lookups.all_lists(session))
        found = ([_snapshot(cl) for cl in lists], [_snapshot(t) for t in session.scalars(select(Treatment))])
        cache.clear()  # an older version is never asked for again
        cache[version] = found
    return found


def _snapshot(row: ControlList | Treatment) -> SimpleNamespace:
    mapper: Mapper[Any] = inspect(type(row))
    return SimpleNamespace(**{column.key: getattr(row, column.key) for column in mapper.column_attrs})


@blp.route("/<ref>", parameters=[REF_PARAMETER])
class CountryStatus(MethodView):
    @blp.arguments(CountryStatusQuery(), location="query", as_kwargs=True)
    @blp.cached_response(CountryStatusSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_country")
    def get(self, ref, as_of=None, known_at=None, list=None):  # noqa: A002
        """A country's status on every list: `restrictions_apply`, since when, pending details, sources."""
        country = resolve_country(ref)
        version = document_version()  # read before the session reads: it sees data at least this new
        session = db.session()
        list_ids = resolve_lists(session, list, "list", body=False)
        return country_body(session, country, as_of or clock.today(), known_at, list_ids, version)


def lists_checked(
    session: Session, version: int | None, now: datetime, known_at: datetime | None = None
) -> list[dict]:
    """When each list was last checked and whether that is too long ago. The same for every
    country and date asked, so read once per data version and day (each time when `version`
    is None); staleness is judged on `now`'s day.

    `known_at`: as the service knew it then (what a lookup with `known_at` answers): the last
    check recorded by then, else the list's reference if it was published by then, else nothing
    (never checked, as far as anyone knew); staleness is judged on `known_at`'s day."""
    if known_at is not None:
        return _checked_as_known(session, version, known_at)
    cache = current_app.extensions.setdefault("exportctl.lists_checked", {})
    key = (version, now.date())
    checked = cache.get(key) if version is not None else None
    if checked is None:
        lists = {cl.id: cl for cl in lookups.all_lists(session)}
        statuses = freshness.statuses(session, current_app.config, now, list(lists.values()))
        checked = [
            (s["list"]["id"], s["checked_at"], freshness.max_age(lists[s["list"]["id"]], current_app.config))
            for s in statuses
        ]
        if version is not None:
            cache.clear()  # an older version is never asked for again
            cache[key] = checked
    return [
        {"list_id": list_id, "checked_at": at, "stale": freshness.is_stale(at, limit, now)}
        for list_id, at, limit in checked
    ]


def _checked_as_known(session: Session, version: int | None, known_at: datetime) -> list[dict]:
    """`lists_checked` at `known_at`. Every check's time (and, for a list with no reference of
    its own, every dated piece of evidence) is read once per data version, so a lookup at any
    moment costs a search per list, not the queries of `freshness.statuses`."""
    cache = current_app.extensions.setdefault("exportctl.check_times", {})
    found = cache.get(version) if version is not None else None
    if found is None:
        lists = lookups.all_lists(session)
        times = freshness.check_times(session, [cl.id for cl in lists])
        references = {cl.id: freshness.reference_at(cl) for cl in lists}
        # A list with no dated source of its own was read from its newest dated evidence.
        evidence = freshness.evidence_timelines(session, [i for i, at in references.items() if at is None])
        found = [
            (
                cl.id,
                times.get(cl.id, []),
                references[cl.id],
                evidence.get(cl.id),
                freshness.max_age(cl, current_app.config),
            )
            for cl in lists
        ]
        if version is not None:
            cache.clear()  # an older version is never asked for again
            cache[version] = found
    answer = []
    for list_id, times, reference, timeline, limit in found:
        earlier = bisect.bisect_right(times, known_at)
        at: datetime | None
        if earlier:
            at = times[earlier - 1]
        elif reference is not None:
            at = reference if reference <= known_at else None
        else:
            at = timeline.at(known_at) if timeline is not None else None
        answer.append(
            {"list_id": list_id, "checked_at": at, "stale": freshness.is_stale(at, limit, known_at)}
        )
    return answer


@blp.route("/<ref>/history", parameters=[REF_PARAMETER])
class CountryHistory(MethodView):
    @blp.arguments(HistoryQuery(), location="query", as_kwargs=True)
    @blp.cached_response(ChangePage)
    @blp.problems(404)
    @blp.doc(operationId="get_country_history")
    def get(self, ref, limit, cursor=None, known_at=None):
        """Every change and observation across lists, newest first (by date, then recording), cited."""
        items, last = lookups.country_history(
            db.session(), resolve_country(ref), known_at, limit=limit, cursor=history_cursor(cursor)
        )
        return {"items": items, "next_cursor": history_next_cursor(last)}


def history_next_cursor(last: lookups.HistoryCursor | None) -> str | None:
    return encode_cursor([last[0].isoformat(), last[1], last[2]]) if last else None


def history_cursor(cursor) -> lookups.HistoryCursor | None:
    """A history page's cursor, [date, rank, id] as issued, checked."""
    if cursor is None:
        return None
    try:
        day, rank, row_id = cursor
        parsed = (date.fromisoformat(day), int(rank), int(row_id))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            "Invalid query parameter 'cursor'.", {"cursor": ["Not a cursor for this collection."]}
        ) from exc
    if parsed[1] not in (0, 1) or not 0 < parsed[2] < 2**31 or isinstance(row_id, bool):
        raise InvalidInput(
            "Invalid query parameter 'cursor'.", {"cursor": ["Not a cursor for this collection."]}
        )
    return parsed
