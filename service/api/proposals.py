"""Proposals (editor keys): what the importers read in the regulator's publications, to approve or reject.

Approving records the change through the same domain path as
`POST /v1/lists/{list}/entries/{country}/changes`, as the approver, with the
proposal's sources; a proposal overtaken by a change recorded meanwhile is
marked stale instead (409).
"""

from flask.views import MethodView

from service import clock, db
from service.api import Blueprint, writes
from service.api.countries import resolve_country
from service.api.paging import id_cursor, id_page
from service.domain import lookups
from service.domain.countries import registry
from service.domain.errors import InvalidInput, ProposalStale, UnknownCountry, UnknownList
from service.importers import proposals
from service.schemas import (
    ProposalDecisionSchema,
    ProposalDetailSchema,
    ProposalPage,
    ProposalSchema,
    ProposalsQuery,
    RejectSchema,
    WriteHeaders,
)
from service.vocabulary import ProposalState, Role

blp = Blueprint(
    "proposals",
    __name__,
    url_prefix="/v1/proposals",
    description="Changes the importers read in the eCFR and the Federal Register, for an editor to approve.",
)

PROPOSAL_PARAMETER = {
    "in": "path",
    "name": "proposal_id",
    "required": True,
    "description": "The proposal's id.",
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
}

_proposal_schema = ProposalSchema()


def _filters(list_id: str | None, country: str | None) -> str | None:
    """Check the list and country filters; an unknown one names its parameter."""
    if list_id is not None:
        try:
            lookups.get_list(db.session(), list_id)
        except UnknownList as exc:
            raise InvalidInput("Invalid query parameter 'list'.", {"list": [exc.detail]}) from exc
    if country is None:
        return None
    try:
        return resolve_country(country).alpha_2
    except UnknownCountry as exc:
        raise InvalidInput("Invalid query parameter 'country'.", {"country": [exc.detail]}) from exc


def _current(session, proposal) -> dict | None:
    if proposal.kind != "change":
        return None
    country = registry().get(proposal.country_code)
    assert country is not None, f"no country has the code {proposal.country_code!r}"
    return lookups.entry_state(session, proposal.control_list, country, clock.today())


@blp.route("")
class Proposals(MethodView):
    @blp.authorized(Role.EDITOR)
    @blp.arguments(ProposalsQuery(), location="query", as_kwargs=True)
    @blp.response(200, ProposalPage)
    @blp.doc(operationId="list_proposals")
    def get(self, limit, cursor=None, status=None, list=None, country=None, source=None):  # noqa: A002
        """Proposals, newest first; `status=pending` is the queue to decide."""
        country_code = _filters(list, country)
        rows = proposals.list_proposals(
            db.session(),
            limit=limit,
            before=id_cursor(cursor),
            state=status,
            list_id=list,
            country_code=country_code,
            origin=source,
        )
        page = id_page(rows, limit)
        return {**page, "items": [proposals.proposal_document(p) for p in page["items"]]}


@blp.route("/<int:proposal_id>", parameters=[PROPOSAL_PARAMETER])
class ProposalDetail(MethodView):
    @blp.authorized(Role.EDITOR)
    @blp.response(200, ProposalDetailSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_proposal")
    def get(self, proposal_id):
        """One proposal, with the entry's current state beside the proposed change."""
        session = db.session()
        proposal = proposals.get_proposal(session, proposal_id)
        current = _current(session, proposal)
        return {
            **proposals.proposal_document(proposal),
            "current": current,
            "overtaken": bool(current)
            and proposal.state == ProposalState.PENDING
            and current["version"] != proposal.base_version,
        }


@blp.route("/<int:proposal_id>/approve", parameters=[PROPOSAL_PARAMETER])
class ApproveProposal(MethodView):
    @blp.authorized(Role.EDITOR, write=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.response(200, ProposalDecisionSchema)
    @blp.problems(404, 409)
    @blp.doc(operationId="approve_proposal")
    def post(self, proposal_id, idempotency_key=None):
        """Approve: record the proposed change as you, with the proposal's sources.

        The change goes through the same rules as `POST …/changes` (legal
        transitions, entry versions, events and webhooks). 409 if the proposal was
        already decided, names no entry (a review), or was overtaken by a change
        recorded meanwhile, in which case it is marked `stale`.
        """

        def operation(session, principal):
            decision = proposals.approve(
                session, proposal_id, actor=writes.actor(principal), recorded_at=clock.utcnow()
            )
            if decision.stale:
                document = _proposal_schema.dump(proposals.proposal_document(decision.proposal))
                stale = ProposalStale(
                    f"Proposal {document['id']} was overtaken by a change recorded since it was made; "
                    "it is now stale and nothing was recorded. Import the document again to re-propose.",
                    proposal=document,
                )
                return writes.Outcome(None, 409, error=stale)
            recorded = decision.recorded
            country = registry().get(decision.proposal.country_code)
            control_list = recorded.entry.control_list
            return writes.Outcome(
                {
                    "proposal": proposals.proposal_document(decision.proposal),
                    "change": lookups.change_document(recorded.change, control_list, country.alpha_2),
                    "entry": lookups.entry_state(session, control_list, country, clock.today()),
                },
                200,
            )

        return writes.perform(operation, idempotency_key)


@blp.route("/<int:proposal_id>/reject", parameters=[PROPOSAL_PARAMETER])
class RejectProposal(MethodView):
    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(RejectSchema())
    @blp.response(200, ProposalSchema)
    @blp.problems(404, 409)
    @blp.doc(operationId="reject_proposal")
    def post(self, body, proposal_id, idempotency_key=None):
        """Reject, with a reason (kept with the proposal and in the audit log). Nothing is recorded."""

        def operation(session, principal):
            proposal = proposals.reject(session, proposal_id, body["reason"], actor=writes.actor(principal))
            return writes.Outcome(proposals.proposal_document(proposal), 200)

        return writes.perform(operation, idempotency_key)
