"""Control lists, their entries, one entry's status and history; recording changes."""

import re

from flask.views import MethodView

from service import clock, db
from service.api import Blueprint, writes
from service.api.countries import REF_PARAMETER, history_cursor, history_next_cursor, resolve_country
from service.api.paging import page
from service.domain import lookups
from service.domain.changes import (
    ChangeRequest,
    ObservationRequest,
    entry_state,
    record_observation,
    record_status_change,
)
from service.domain.errors import NotFound
from service.domain.lists import create_list, update_list
from service.domain.sources import at_least
from service.domain.statuses import Answer, EvidenceKind, Status
from service.models import Observation, StatusChange
from service.schemas import (
    ChangeCreatedSchema,
    ChangeCreateSchema,
    ChangeSchema,
    ConditionalHeaders,
    ConditionalWriteHeaders,
    EntriesQuery,
    EntryQuery,
    EntrySchema,
    ListCreateSchema,
    ListedEntryPage,
    ListPage,
    ListPatchSchema,
    ListSchema,
    ObservationCreatedSchema,
    ObservationCreateSchema,
    PageQuery,
    WriteHeaders,
)
from service.vocabulary import Role

blp = Blueprint(
    "lists",
    __name__,
    url_prefix="/v1/lists",
    description="Control lists (such as EAR country groups), their entries and each entry's history.",
)

MAX_ID = 2**31 - 1

LIST_PARAMETER = {
    "in": "path",
    "name": "list_id",
    "required": True,
    "description": "The list's stable id, such as `us-ear-d1`.",
    "schema": {"type": "string", "minLength": 1},
    "examples": {"d1": {"value": "us-ear-d1"}, "d5": {"value": "us-ear-d5"}},
}
CHANGE_PARAMETER = {
    "in": "path",
    "name": "change_id",
    "required": True,
    "description": "The change's id.",
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
}


# --- writes ----------------------------------------------------------------------

# The gzipped representation's tag (":gzip", service/api/rendering.py) names the same version.
ENTRY_TAG_VERSION = re.compile(r'(W/)?"v(\d+)(?:-[0-9a-f]+)?(?::gzip)?"')


def expected_versions(if_match: str | None) -> tuple[set[int] | None, bool]:
    """Versions a (schema-validated) If-Match accepts, and whether it was `*` (entry must exist)."""
    if if_match is None:
        return None, False
    if if_match.strip() == "*":
        return None, True
    # If-Match compares strongly: a weak tag matches no version (a 412, not a 422).
    return {int(version) for weak, version in ENTRY_TAG_VERSION.findall(if_match) if not weak}, False


def entry_etag_prefix(document: dict) -> str:
    """Entry ETags start with the entry's version, which If-Match on writes compares."""
    return f"v{document['version']}"


def _entry_item(model, list_id: str, ref: str, item_id: int, noun: str):
    """A change or observation of one entry, by id: 404 unless it is this list's and country's."""
    country = resolve_country(ref)
    session = db.session()
    control_list = lookups.get_list(session, list_id)
    item = session.get(model, item_id) if item_id <= MAX_ID else None
    entry = item.entry if item is not None else None
    if entry is None or entry.list_id != control_list.id or entry.country_code != country.alpha_2:
        raise NotFound(f"No {noun} {item_id} on {list_id} for {country.alpha_2}.")
    return country, control_list, item


@blp.route("")
class Lists(MethodView):
    @blp.arguments(PageQuery(), location="query", as_kwargs=True)
    @blp.cached_response(ListPage)
    @blp.doc(operationId="list_lists")
    def get(self, limit, cursor=None):
        """Every control list the service holds."""
        documents = [lookups.list_document(cl) for cl in lookups.all_lists(db.session())]
        return page(documents, lambda d: d["id"], limit, cursor)

    @blp.authorized(Role.ADMIN, write=True, json=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ListCreateSchema())
    @blp.response(
        201,
        ListSchema,
        headers={"Location": {"description": "URL of the new list.", "schema": {"type": "string"}}},
    )
    @blp.problems(409)
    @blp.doc(operationId="create_list")
    def post(self, body, idempotency_key=None):
        """Add a control list (admin), such as the EU dual-use list or a Wassenaar participants list."""

        def operation(session, principal):
            control_list = create_list(session, body, actor=writes.actor(principal))
            document = lookups.list_document(control_list)
            return writes.Outcome(document, 201, {"Location": document["links"]["self"]})

        return writes.perform(operation, idempotency_key)


@blp.route("/<list_id>", parameters=[LIST_PARAMETER])
class ListDetail(MethodView):
    @blp.cached_response(ListSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_list")
    def get(self, list_id):
        """One control list: code, authority, legal basis, and whether its membership is complete."""
        return lookups.list_document(lookups.get_list(db.session(), list_id))

    @blp.authorized(Role.ADMIN, write=True, json=True)
    @blp.arguments(ConditionalHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ListPatchSchema())
    @blp.response(200, ListSchema)
    @blp.problems(404, 412)
    @blp.doc(operationId="update_list")
    def patch(self, body, list_id, if_match=None):
        """Change a list's descriptive fields (admin). Effect and completeness are fixed at creation.

        Send the ETag of your GET as `If-Match` so that two editors cannot overwrite each
        other: if the list changed since, the answer is 412 and nothing changes. The audit
        log keeps the values each update replaced.
        """

        def operation(session, principal):
            control_list = lookups.get_list(session, list_id)
            writes.require_if_match(lambda: lookups.list_document(control_list))
            update_list(session, control_list, body, actor=writes.actor(principal))
            document = lookups.list_document(control_list)
            return writes.Outcome(document, 200, {"ETag": f'"{writes.rendered_etag(document)}"'})

        return writes.perform(operation)


@blp.route("/<list_id>/entries", parameters=[LIST_PARAMETER])
class ListEntries(MethodView):
    @blp.arguments(EntriesQuery(), location="query", as_kwargs=True)
    @blp.cached_response(ListedEntryPage)
    @blp.problems(404)
    @blp.doc(operationId="list_entries")
    def get(self, list_id, limit, cursor=None, as_of=None, known_at=None, status=None, min_evidence=None):
        """Countries with a known status on the list on `as_of` (from a change or an observation), by code."""
        session = db.session()
        control_list = lookups.get_list(session, list_id)
        entries = lookups.list_entries(session, control_list, as_of or clock.today(), known_at)
        if status is not None:
            entries = [e for e in entries if e["status"] == status]
        if min_evidence is not None:
            minimum = EvidenceKind(min_evidence)
            entries = [e for e in entries if at_least(e["evidence"], minimum)]
        return page(entries, lambda e: e["country"]["alpha_2"], limit, cursor)


@blp.route("/<list_id>/entries/<ref>", parameters=[LIST_PARAMETER, REF_PARAMETER])
class EntryDetail(MethodView):
    @blp.arguments(EntryQuery(), location="query", as_kwargs=True)
    @blp.cached_response(EntrySchema, etag_prefix=entry_etag_prefix)
    @blp.problems(404)
    @blp.doc(operationId="get_entry")
    def get(self, list_id, ref, limit, cursor=None, as_of=None, known_at=None):
        """A country's status on one list and its history, newest first, a page at a time.

        `history` holds up to `limit` changes and observations; `next_cursor` (and the
        `Link: rel="next"` header) fetch the next page, with the status again.
        The ETag starts with the entry's version (`"v3-…"`); send it back as
        `If-Match` when recording a change to fail fast if someone else wrote first.
        """
        country = resolve_country(ref)
        session = db.session()
        control_list = lookups.get_list(session, list_id)
        document, last = lookups.entry_detail(
            session,
            control_list,
            country,
            as_of or clock.today(),
            known_at,
            limit=limit,
            cursor=history_cursor(cursor),
        )
        return {**document, "next_cursor": history_next_cursor(last)}


@blp.route(
    "/<list_id>/entries/<ref>/changes/<int:change_id>",
    parameters=[LIST_PARAMETER, REF_PARAMETER, CHANGE_PARAMETER],
)
class ChangeDetail(MethodView):
    @blp.cached_response(ChangeSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_change")
    def get(self, list_id, ref, change_id):
        """One recorded change, with its sources, actor and request id."""
        country, control_list, change = _entry_item(StatusChange, list_id, ref, change_id, "change")
        return lookups.change_document(change, control_list, country.alpha_2)


@blp.route("/<list_id>/entries/<ref>/changes", parameters=[LIST_PARAMETER, REF_PARAMETER])
class EntryChanges(MethodView):
    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(ConditionalWriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ChangeCreateSchema())
    @blp.response(
        201,
        ChangeCreatedSchema,
        headers={"Location": {"description": "URL of the recorded change.", "schema": {"type": "string"}}},
    )
    @blp.problems(404, 409, 412)
    @blp.doc(operationId="record_change")
    def post(self, body, list_id, ref, idempotency_key=None, if_match=None):
        """Record a status change on an entry (the entry is created by its first change).

        Changes are never edited or deleted: correct a mistake by recording a new
        change, backdated if need be; `as_of` and `known_at` answer around it.
        An illegal transition is a 409 listing the statuses `allowed` next.
        """
        country = resolve_country(ref)
        versions, must_exist = expected_versions(if_match)
        request = ChangeRequest(
            status=Status(body["status"]),
            effective_on=body["effective_on"],
            expected_effective_on=body["expected_effective_on"],
            note=body["note"],
            sources=body["sources"],
            confidence=body["confidence"],
        )

        def operation(session, principal):
            control_list = lookups.get_list(session, list_id)
            recorded = record_status_change(
                session,
                control_list,
                country.alpha_2,
                request,
                recorded_at=clock.utcnow(),
                actor=writes.actor(principal),
                expected_versions=versions,
                must_exist=must_exist,
            )
            change = lookups.change_document(recorded.change, control_list, country.alpha_2)
            entry = entry_state(session, control_list, country, recorded.entry, clock.today(), recorded)
            return writes.Outcome(
                {"change": change, "entry": entry}, 201, {"Location": change["links"]["self"]}
            )

        return writes.perform(operation, idempotency_key)


@blp.route(
    "/<list_id>/entries/<ref>/observations/<int:observation_id>",
    parameters=[
        LIST_PARAMETER,
        REF_PARAMETER,
        {**CHANGE_PARAMETER, "name": "observation_id", "description": "The observation's id."},
    ],
)
class ObservationDetail(MethodView):
    @blp.cached_response(ChangeSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_observation")
    def get(self, list_id, ref, observation_id):
        """One recorded observation (`kind: observation`), with its sources, actor and request id."""
        country, control_list, observation = _entry_item(
            Observation, list_id, ref, observation_id, "observation"
        )
        return lookups.observation_document(observation, control_list, country.alpha_2)


@blp.route("/<list_id>/entries/<ref>/observations", parameters=[LIST_PARAMETER, REF_PARAMETER])
class EntryObservations(MethodView):
    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(ConditionalWriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ObservationCreateSchema())
    @blp.response(
        201,
        ObservationCreatedSchema,
        headers={
            "Location": {"description": "URL of the recorded observation.", "schema": {"type": "string"}}
        },
    )
    @blp.problems(404, 409, 412)
    @blp.doc(operationId="record_observation")
    def post(self, body, list_id, ref, idempotency_key=None, if_match=None):
        """Record an observation: a dated source showing the entry's status on a date (editor).

        An observation changes no status and emits no status-change event: it makes
        the status known from `observed_on` on where no change records when it
        began (before the earliest evidence, such an entry answers `unknown`). It
        appears in the entry's history with `kind: observation`; `known_at` counts it
        from when it was recorded. Idempotency-Key and If-Match work as for changes.
        """
        country = resolve_country(ref)
        versions, must_exist = expected_versions(if_match)
        request = ObservationRequest(
            status=Answer(body["status"]),
            observed_on=body["observed_on"],
            note=body["note"],
            sources=body["sources"],
            confidence=body["confidence"],
        )

        def operation(session, principal):
            control_list = lookups.get_list(session, list_id)
            observation, entry = record_observation(
                session,
                control_list,
                country.alpha_2,
                request,
                recorded_at=clock.utcnow(),
                actor=writes.actor(principal),
                expected_versions=versions,
                must_exist=must_exist,
            )
            document = lookups.observation_document(observation, control_list, country.alpha_2)
            state = entry_state(session, control_list, country, entry, clock.today())
            location = document["links"]["self"]
            return writes.Outcome({"observation": document, "entry": state}, 201, {"Location": location})

        return writes.perform(operation, idempotency_key)
