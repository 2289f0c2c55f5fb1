"""Marshmallow schemas: what the API accepts and returns. The OpenAPI document is built from them."""

import base64
import binascii
import json
import re
from collections import Counter
from datetime import UTC, date
from urllib.parse import urlsplit

import marshmallow as ma
from marshmallow import fields, validate

from service import clock
from service.domain.between import CHANGES_SHOWN
from service.domain.events import PUBLIC_EVENT_TYPES
from service.domain.sources import with_kind
from service.domain.statuses import OBSERVABLE, Answer, Effect, EvidenceKind, Status
from service.vocabulary import Confidence, DeliveryState, EventType, ProposalState, values

# An RFC 3986 http(s) URI with a host (no user info): ASCII only, percent-escapes well formed.
_URI_CHARS = r"-A-Za-z0-9._~!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_HOST = rf"(?:[{_URI_CHARS}]|{_PCT})+|\[[0-9A-Fa-f:.]+\]"
_PATH = rf"(?:/(?:[{_URI_CHARS}:@]|{_PCT})*)*"
_QUERY = rf"(?:[{_URI_CHARS}:@/?]|{_PCT})*"
HTTP_URL_PATTERN = rf"^https?://(?:{_HOST})(?::[0-9]{{1,5}})?{_PATH}(?:\?{_QUERY})?(?:#{_QUERY})?$"


class HttpUrl(fields.String):
    """An absolute http(s) URL with a host. Other schemes (ftp:, javascript:) are refused."""

    def __init__(self, **kwargs):
        metadata = {"format": "uri", "pattern": HTTP_URL_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(validate=validate.Length(max=2000), metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parts = urlsplit(text)
            valid = bool(re.fullmatch(HTTP_URL_PATTERN, text) and parts.hostname) and parts.port != 0
        except ValueError:  # a port out of range, a malformed IPv6 address
            valid = False
        if not valid:
            raise ma.ValidationError("Not an http(s) URL with a host.")
        return text


STATUSES = [s.value for s in Status]
ANSWERS = [a.value for a in Answer]
EFFECTS = [e.value for e in Effect]
EVIDENCE_KINDS = [k.value for k in EvidenceKind]
CONFIDENCES = values(Confidence)

MAX_PAGE = 500
MAX_SEQUENCE = 2**63 - 1  # event numbers are 64-bit
DEFAULT_PAGE = 100


class UTCDateTimeField(fields.DateTime):
    """RFC 3339 timestamps in UTC, written with a `Z`."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RFC3339Field(fields.AwareDateTime):
    """An RFC 3339 time with its offset: `2026-02-21T00:00:00Z`."""

    def __init__(self, **kwargs):
        # From 1900 on, as dates are: the spec carries the year's lower bound as a pattern.
        metadata = {"pattern": r"^(19[0-9]{2}|[2-9][0-9]{3})-", **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)

    # RFC 3339 5.6's date-time (any case for T and Z). Python reads ISO 8601 forms beyond it (no
    # seconds, basic format, week dates, +0700), which would be taken as moments nobody wrote.
    SYNTAX = re.compile(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    )

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or self.SYNTAX.fullmatch(value.upper()) is None:
            raise ma.ValidationError("Not an RFC 3339 date-time (e.g. 2026-02-21T00:00:00Z).")
        try:
            # RFC 3339 §5.6 lets "T" and "Z" be lower case; nothing else in the syntax is a letter.
            moment = super()._deserialize(value.upper(), attr, data, **kwargs).astimezone(UTC)
        except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ma.ValidationError("Out of the range of representable times.") from exc
        if moment.date() < EARLIEST_DATE:
            raise ma.ValidationError(f"Must be on or after {EARLIEST_DATE.isoformat()}T00:00:00Z.")
        return moment


class KnownAt(RFC3339Field):
    """`known_at`: a moment that has come. What the service will know later is not known yet;
    answered with what it knows now, the answer would change with the next write recorded before
    that moment, and an answer as known at a moment must stay the one it was."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment > clock.utcnow():
            raise ma.ValidationError("Must not be in the future: leave known_at out for what is known now.")
        return moment


EARLIEST_DATE = date(1900, 1, 1)
# YYYY-MM-DD from 1900 on, as a pattern the spec can carry.
DATE_PATTERN = r"^(19[0-9]{2}|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class StrictDate(fields.Date):
    """A calendar date written YYYY-MM-DD, nothing else, from 1900-01-01 on (no export-control
    record is older: an earlier date is a typo, and some drivers mishandle it)."""

    def __init__(self, **kwargs):
        metadata = {"pattern": DATE_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):  # already ISO 8601, as stored in JSON columns
            return value
        return super()._serialize(value, attr, obj, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) != 10:
            raise ma.ValidationError("Not a date in the form YYYY-MM-DD.")
        day = super()._deserialize(value, attr, data, **kwargs)
        if day < EARLIEST_DATE:
            raise ma.ValidationError(f"Must be on or after {EARLIEST_DATE.isoformat()}.")
        return day


class Cursor(fields.String):
    """An opaque keyset cursor: base64url of a small JSON value."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return encode_cursor(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "":  # `cursor=` as a form or a client library sends it: the first page
            return None
        try:
            return decode_cursor(super()._deserialize(value, attr, data, **kwargs))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise ma.ValidationError("Not a cursor this API issued.") from exc


def encode_cursor(value) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str):
    padded = text + "=" * (-len(text) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    scalars = (str, int, bool)
    if isinstance(value, scalars) or (
        isinstance(value, list) and all(isinstance(item, scalars) for item in value)
    ):
        return value
    raise ValueError("bad cursor")


# Characters no text may hold: lone surrogates (not Unicode scalar values: they cannot be
# encoded, signed or stored) and control characters (they break XML, logs and terminals).
# TAB, LF and CR are allowed in free text (a note); `Line` fields refuse them too.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAKS = re.compile("[\t\n\r]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return "Must not contain unpaired surrogates (text must be valid Unicode)."
    if char == "\x00":
        return "Must not contain NUL characters."
    return f"Must not contain control characters (U+{ord(char):04X})."


class Pairs(dict):
    """A JSON object as decoded, remembering keys it held more than once."""

    duplicates: tuple[str, ...] = ()


def json_object(pairs: list[tuple[str, object]]) -> Pairs:
    """`object_pairs_hook` that keeps every value's key count, so a duplicate is an error, not a loss."""
    document = Pairs(pairs)
    if len(document) != len(pairs):
        counts = Counter(k for k, _ in pairs)
        document.duplicates = tuple(sorted(k for k, n in counts.items() if n > 1))
    return document


def _text_errors(value) -> dict[str, list[str]]:
    """Fields holding text no record may hold, and keys given twice, by dotted path.

    Iterative, so a deeply nested body cannot exhaust the stack.
    """
    found: dict[str, list[str]] = {}
    stack = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                found[path or "_schema"] = [problem]
            continue
        for key in getattr(item, "duplicates", ()):
            found[f"{path}.{key}" if path else key] = ["Given more than once: a value would be lost."]
        children = (
            item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        )
        for key, child in children:
            if isinstance(key, str) and text_problem(key):
                found[path or "_schema"] = ["Field names must be valid text without control characters."]
                continue
            stack.append((f"{path}.{key}" if path else str(key), child))
    return found


class Schema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def refuse_unstorable_text(self, data, **_kwargs):
        errors = _text_errors(data) if isinstance(data, dict | list) else {}
        if errors:
            raise ma.ValidationError(errors)
        return data


# The same rules as JSON Schema patterns (ECMA-262), so the spec says what the service refuses.
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ud800-\\udfff]*$"
LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\ud800-\\udfff]*$"


class Text(fields.String):
    """Free text (a note, a description): TAB, LF and CR allowed, no other control character."""

    def __init__(self, **kwargs):
        metadata = {"pattern": TEXT_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)


class Line(fields.String):
    """One line of text (a code, a name, a title): no TAB, LF or CR either."""

    def __init__(self, **kwargs):
        metadata = {"pattern": LINE_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _LINE_BREAKS.search(text):
            raise ma.ValidationError("Must be one line: no tabs or line breaks.")
        return text


# --- query strings ---------------------------------------------------------------


class TimeQuery(Schema):
    as_of = StrictDate(
        metadata={
            "description": "Answer for the status in force on this date (YYYY-MM-DD). Default: today (UTC)."
        }
    )
    known_at = KnownAt(
        metadata={
            "description": "Answer as the service would have at this moment (RFC 3339, not in the "
            "future): changes recorded later are ignored. Default: now."
        }
    )


class CountryStatusQuery(TimeQuery):
    list = fields.List(
        Line(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=100),
        metadata={
            "description": "Only these lists (repeat it: `list=us-ear-d1&list=D:3`), by id or code; "
            "`restrictions_apply` and the other summaries then speak for them only. Default: every list."
        },
    )


class QueryInteger(fields.Integer):
    """An integer in a query string, in decimal digits (a minus sign first at most): `+5`, ` 5`,
    `1_0` or another script's digits are refused, not read as 5 or 10 as int() would."""

    DIGITS = re.compile(r"-?[0-9]+")

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and self.DIGITS.fullmatch(value) is None:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class LimitQuery(Schema):
    limit = QueryInteger(
        load_default=DEFAULT_PAGE,
        metadata={"description": f"Page size; clamped to 1..{MAX_PAGE}. Default {DEFAULT_PAGE}."},
    )

    @ma.post_load
    def clamp(self, data, **_kwargs):
        data["limit"] = max(1, min(MAX_PAGE, data["limit"]))
        return data


class PageQuery(LimitQuery):
    cursor = Cursor(metadata={"description": "Opaque cursor from a previous page's `next_cursor`."})


class CountriesQuery(TimeQuery, PageQuery):
    restricted = fields.Boolean(
        metadata={"description": "Only countries that restrictions apply to (true) or not (false)."}
    )
    pending = fields.Boolean(metadata={"description": "Only countries with (or without) a pending change."})


class HistoryQuery(PageQuery):
    known_at = KnownAt(
        metadata={"description": "Only changes recorded by this moment (RFC 3339, not in the future)."}
    )


class EntryQuery(TimeQuery, PageQuery):
    """One entry: its status on `as_of`, and a page of its history (recorded by `known_at`)."""


class EntriesQuery(TimeQuery, PageQuery):
    status = fields.String(
        validate=validate.OneOf(STATUSES),
        metadata={"description": "Only entries whose status in force is this one."},
    )
    min_evidence = fields.String(
        validate=validate.OneOf(EVIDENCE_KINDS),
        metadata={
            "description": "Only entries whose current status rests on at least this kind of source "
            "(strongest first: " + ", ".join(EVIDENCE_KINDS) + ")."
        },
    )


# --- documents -------------------------------------------------------------------


class SourceSchema(Schema):
    title = Line(required=True, validate=validate.Length(min=1, max=500))
    publisher = Line(required=True, validate=validate.Length(min=1, max=300))
    url = HttpUrl(required=True, metadata={"description": "http(s) URL of the source."})
    published_on = StrictDate(
        allow_none=True,
        load_default=None,
        metadata={"description": "When the source was published: not after the day it is recorded."},
    )
    citation = Line(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=500),
        metadata={"description": "Formal citation, such as `81 FR 76859`."},
    )
    kind = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(EVIDENCE_KINDS),
        metadata={
            "description": "What the source is: regulation (Federal Register, eCFR, Official Journal, a "
            "cabinet order), official_statement (a government readout or notice), press, secondary "
            "(law-firm or trade summaries), dataset (a machine-parsed copy). Optional: when absent it is "
            "`regulation` for federalregister.gov, ecfr.gov and govinfo.gov, else `secondary`."
        },
    )

    @ma.pre_dump
    def fill_kind(self, data, **_kwargs):
        return with_kind(data) if isinstance(data, dict) else data

    @ma.validates("published_on")
    def published_by_now(self, value, **_kwargs):
        if value is not None and value > clock.today():
            raise ma.ValidationError("A source cannot be published after the day it is recorded.")


class CountrySchema(Schema):
    alpha_2 = fields.String(required=True, metadata={"example": "VN"})
    alpha_3 = fields.String(required=True, metadata={"example": "VNM"})
    numeric = fields.String(required=True, allow_none=True, metadata={"example": "704"})
    name = fields.String(
        required=True, metadata={"description": "Common English name.", "example": "Vietnam"}
    )
    iso_name = fields.String(
        required=True, metadata={"description": "ISO 3166-1 name.", "example": "Viet Nam"}
    )
    official_name = fields.String(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True)


class ListRefSchema(Schema):
    id = fields.String(required=True, metadata={"example": "us-ear-d1"})
    code = fields.String(required=True, metadata={"example": "D:1"})
    name = fields.String(required=True)
    jurisdiction = fields.String(required=True, metadata={"example": "US"})
    effect = fields.String(required=True, validate=validate.OneOf(EFFECTS))


class TreatmentSchema(Schema):
    country = fields.String(required=True, metadata={"example": "HK"})
    treated_as = fields.String(required=True, metadata={"example": "CN"})
    effective_on = fields.Date(required=True)
    recorded_at = UTCDateTimeField(required=True)
    note = fields.String(required=True, allow_none=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)


class ListLinksSchema(Schema):
    self = fields.String(required=True)
    entries = fields.String(required=True)


class ListSchema(ListRefSchema):
    authority = fields.String(required=True)
    legal_basis = fields.String(required=True)
    url = fields.String(required=True)
    restrictive = fields.Boolean(required=True)
    membership_complete = fields.Boolean(
        required=True,
        metadata={
            "description": "If true, a country absent from the list is `not_listed`; otherwise `unknown`."
        },
    )
    membership_complete_from = fields.Date(
        required=True,
        allow_none=True,
        metadata={"description": "Absence proves `not_listed` only on or after this date."},
    )
    description = fields.String(required=True, allow_none=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)
    treatments = fields.List(
        fields.Nested(TreatmentSchema),
        required=True,
        metadata={"description": "Countries that take another's status on this list (Hong Kong as China)."},
    )
    recorded_at = UTCDateTimeField(required=True)
    updated_at = UTCDateTimeField(required=True)
    links = fields.Nested(ListLinksSchema, required=True)


class PendingSchema(Schema):
    announced_on = fields.Date(required=True, allow_none=True)
    expected_effective_on = fields.Date(required=True, allow_none=True)


class EntryLinksSchema(Schema):
    entry = fields.String(required=True)


UNKNOWN_REASONS = [
    "before_first_observation",
    "unrecorded_change",
    "membership_not_complete",
    "before_membership_complete",
    "not_yet_known",
]


class StandingSchema(Schema):
    """A country's status on one list."""

    list = fields.Nested(ListRefSchema, required=True)
    status = fields.String(required=True, validate=validate.OneOf(ANSWERS))
    treated_as = fields.Nested(
        TreatmentSchema,
        required=True,
        allow_none=True,
        metadata={
            "description": "Set when the country takes another's status on this list; "
            "the rest of the answer describes that one."
        },
    )
    restrictions_apply = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={
            "description": "True while listed or pending removal on a restrictive list; null when unknown."
        },
    )
    basis = fields.String(
        required=True,
        validate=validate.OneOf(["recorded_change", "observation", "absent_from_complete_list", "no_data"]),
        metadata={
            "description": "Why the service gives this status: a dated change in force, evidence of the "
            "status with no change recorded (`observation`), absence from a complete list, or nothing."
        },
    )
    reason = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(UNKNOWN_REASONS),
        metadata={
            "description": "Why the status is unknown: before_first_observation (the earliest evidence is "
            "`observed_since`; when the status began is not recorded), unrecorded_change (evidence "
            "disagrees around this date), membership_not_complete, before_membership_complete, "
            "not_yet_known (as known at known_at). Null unless unknown."
        },
    )
    since = fields.Date(
        required=True,
        allow_none=True,
        metadata={"description": "When this status took effect; null if in force since an unrecorded date."},
    )
    observed_since = fields.Date(
        required=True,
        allow_none=True,
        metadata={
            "description": "Where `since` is not recorded: the earliest evidence of this status, before "
            "which the status is unknown (for `unknown` with reason before_first_observation: the date "
            "from which it is known)."
        },
    )
    evidence = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(EVIDENCE_KINDS),
        metadata={"description": "The strongest kind of source behind this status; null when unknown."},
    )
    confidence = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(CONFIDENCES),
        metadata={"description": "How sure the record is, where its source graded it (high, medium, low)."},
    )
    pending = fields.Nested(PendingSchema, required=True, allow_none=True)
    effective_on = fields.Date(required=True, allow_none=True)
    recorded_at = UTCDateTimeField(required=True, allow_none=True)
    change_id = fields.Integer(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)
    links = fields.Nested(EntryLinksSchema, required=True)


class ListCheckedSchema(Schema):
    list_id = fields.String(required=True)
    checked_at = UTCDateTimeField(required=True, allow_none=True)
    stale = fields.Boolean(required=True)


class CountryStatusSchema(Schema):
    country = fields.Nested(CountrySchema, required=True)
    as_of = fields.Date(required=True)
    known_at = UTCDateTimeField(required=True, allow_none=True)
    restrictions_apply = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={
            "description": "Restrictions apply on at least one restrictive list; null if none do but "
            "some restrictive lists cannot tell (`unknown_restrictive_lists`)."
        },
    )
    restricting_lists = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "The restrictive lists whose status applies restrictions."},
    )
    unknown_restrictive_lists = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "The restrictive lists whose status is unknown on this date."},
    )
    pending = fields.Boolean(
        required=True, metadata={"description": "A change is pending on at least one list."}
    )
    entries = fields.List(
        fields.Nested(StandingSchema),
        required=True,
        metadata={"description": "One per list, ordered by the list's jurisdiction, then its id."},
    )
    lists_checked = fields.List(
        fields.Nested(ListCheckedSchema),
        required=True,
        metadata={
            "description": "When each list this answer relies on was last checked against its source "
            "(with `known_at`: as known then, staleness judged on that day)."
        },
    )


class PendingItemSchema(PendingSchema):
    list_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


class SelfLinkSchema(Schema):
    self = fields.String(required=True)


class CountryOverviewSchema(Schema):
    country = fields.Nested(CountrySchema, required=True)
    restrictions_apply = fields.Boolean(required=True, allow_none=True)
    restricting_lists = fields.List(fields.String(), required=True)
    pending = fields.List(fields.Nested(PendingItemSchema), required=True)
    unknown_lists = fields.List(fields.String(), required=True)
    links = fields.Nested(SelfLinkSchema, required=True)


class ChangeLinksSchema(Schema):
    self = fields.String(required=True)
    entry = fields.String(required=True)


class ChangeSchema(Schema):
    """A recorded change or, in histories, an observation (`kind` tells which)."""

    id = fields.Integer(required=True)
    kind = fields.String(
        required=True,
        validate=validate.OneOf(["change", "observation"]),
        metadata={
            "description": "`change`: the status moved on effective_on. `observation`: a source showed "
            "the status on observed_on (also given as effective_on), without a change."
        },
    )
    list = fields.Nested(ListRefSchema, required=True)
    country = fields.Nested(CountrySchema, required=True)
    from_status = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(STATUSES),
        metadata={
            "description": "The status in force on effective_on when this change was recorded "
            "(a later, backdated change does not rewrite it); null when it was unknown or absent "
            "(such as an entry's first change), and for observations."
        },
    )
    status = fields.String(required=True, validate=validate.OneOf(OBSERVABLE))
    restrictions_apply = fields.Boolean(required=True)
    effective_on = fields.Date(
        required=True,
        allow_none=True,
        metadata={
            "description": "Legal date; for a pending status, the announcement date. Null: unrecorded."
        },
    )
    expected_effective_on = fields.Date(required=True, allow_none=True)
    recorded_at = UTCDateTimeField(required=True)
    observed_on = fields.Date(
        required=True, allow_none=True, metadata={"description": "For an observation: the date it shows."}
    )
    note = fields.String(required=True, allow_none=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)
    evidence = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(EVIDENCE_KINDS),
        metadata={"description": "The strongest kind among its sources."},
    )
    confidence = fields.String(required=True, allow_none=True, validate=validate.OneOf(CONFIDENCES))
    actor = fields.String(required=True, allow_none=True)
    request_id = fields.String(required=True, allow_none=True)
    links = fields.Nested(ChangeLinksSchema, required=True)


class EntrySchema(StandingSchema):
    country = fields.Nested(CountrySchema, required=True)
    as_of = fields.Date(required=True)
    known_at = UTCDateTimeField(required=True, allow_none=True)
    version = fields.Integer(
        required=True, metadata={"description": "Bumped by every change; the ETag carries it."}
    )
    history = fields.List(
        fields.Nested(ChangeSchema),
        required=True,
        metadata={"description": "A page of the entry's changes and observations, newest first."},
    )
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as `cursor` for the next page of `history`; null on the last page."},
    )


class ListedEntrySchema(StandingSchema):
    country = fields.Nested(CountrySchema, required=True)


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(
                required=True,
                allow_none=True,
                metadata={"description": "Pass as `cursor` for the next page; null on the last page."},
            ),
        },
    )


CountryOverviewPage = page_schema(CountryOverviewSchema, "CountryOverviewPage")
ListPage = page_schema(ListSchema, "ListPage")
ListedEntryPage = page_schema(ListedEntrySchema, "ListedEntryPage")
ChangePage = page_schema(ChangeSchema, "ChangePage")


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))
    database = fields.String(required=True, validate=validate.OneOf(["ok"]))
    event_sequence = fields.Integer(required=True, metadata={"description": "The last event's number."})


class SuggestionSchema(Schema):
    alpha_2 = fields.String(required=True)
    name = fields.String(required=True)
    href = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details, with the extensions this API adds where they apply."""

    type = fields.String(required=True, metadata={"example": "/problems/validation-error"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    request_id = fields.String(metadata={"description": "The X-Request-ID of the request, for the logs."})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Invalid input: each field (a dotted path in a body) and its messages."},
    )
    allowed = fields.List(
        fields.String(), metadata={"description": "illegal-transition: the statuses that may follow."}
    )
    current_status = fields.String(allow_none=True, metadata={"description": "illegal-transition."})
    requested_status = fields.String(metadata={"description": "illegal-transition."})
    current_version = fields.Integer(
        metadata={"description": "precondition-failed: the entry's version now."}
    )
    suggestions = fields.List(
        fields.Nested(SuggestionSchema), metadata={"description": "unknown-country: close matches."}
    )
    known_lists = fields.List(
        fields.String(), metadata={"description": "unknown-list: the list ids there are."}
    )
    treated_as = fields.String(metadata={"description": "treated-as-another-country: the country to use."})
    database = fields.String(metadata={"description": "service-unavailable (health): `unreachable`."})

    class Meta:
        unknown = ma.INCLUDE


# --- writes ----------------------------------------------------------------------

LIST_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$"
# RFC 9110 entity tags: any well-formed one is accepted (one that names no version is a 412).
_ENTITY_TAG = r'(W/)?"[\x21\x23-\x7e]{0,200}"'
IF_MATCH_PATTERN = rf"^(\*|{_ENTITY_TAG}([ \t]*,[ \t]*{_ENTITY_TAG})*)$"
SHORT_TEXT = validate.Length(min=1, max=200)


class WriteHeaders(Schema):
    """Request headers of a write (documented here; unknown headers are ignored)."""

    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[
            validate.Length(min=1, max=255),
            # No comma: a server joins several Idempotency-Key headers with one, and which of the
            # keys was meant cannot be told.
            validate.Regexp(
                r"^[\x21-\x2b\x2d-\x7e]+$",
                error="One key, printable ASCII without spaces or commas (send one Idempotency-Key header).",
            ),
        ],
        metadata={
            "description": "Makes a retried POST safe: the same key with the same body returns the "
            "original response and records nothing new; with a different body, a 422. Kept 48 hours."
        },
    )


class ConditionalHeaders(Schema):
    """If-Match on a write whose resource's ETag is its rendered content (a list)."""

    class Meta:
        unknown = ma.EXCLUDE

    if_match = fields.String(
        data_key="If-Match",
        validate=validate.Regexp(IF_MATCH_PATTERN, error="Entity tags, comma-separated, or *."),
        metadata={
            "description": "The ETag from GET: the change is made only if the resource is still in "
            "that state, else 412 (someone changed it since you read it)."
        },
    )


class ConditionalWriteHeaders(WriteHeaders):
    if_match = fields.String(
        data_key="If-Match",
        validate=validate.Regexp(
            IF_MATCH_PATTERN, error='Entity tags ("v3-…" or "v3"), comma-separated, or *.'
        ),
        metadata={
            "description": 'The entry\'s ETag from GET (`"v3-…"`, or just `"v3"`): the change is '
            "recorded only if the entry is still at that version, else 412. `*`: the entry must exist."
        },
    )


class EvidenceFields(Schema):
    """What a recorded change and a recorded observation both carry: their sources and a note."""

    note = Text(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    sources = fields.List(
        fields.Nested(SourceSchema),
        required=True,
        validate=validate.Length(min=1, max=20, error="Between 1 and 20 sources."),
    )
    confidence = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(CONFIDENCES),
        metadata={"description": "How sure the record is (high, medium, low), if graded."},
    )


class ChangeCreateSchema(EvidenceFields):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    effective_on = StrictDate(
        required=True,
        metadata={
            "description": "Legal date the status takes effect; for a pending status, the announcement "
            "date. May be backdated to correct the record."
        },
    )
    expected_effective_on = StrictDate(
        allow_none=True,
        load_default=None,
        metadata={"description": "For a pending status: when it is expected to take effect, if known."},
    )


class ObservationCreateSchema(EvidenceFields):
    status = fields.String(
        required=True,
        validate=validate.OneOf(OBSERVABLE),
        metadata={"description": "The status the source shows on observed_on; `not_listed` for absence."},
    )
    observed_on = StrictDate(
        required=True,
        metadata={
            "description": "The date the source shows the status on (its publication date, if it gives "
            "no other). Not in the future."
        },
    )


class EntryStateSchema(StandingSchema):
    country = fields.Nested(CountrySchema, required=True)
    as_of = fields.Date(required=True)
    version = fields.Integer(required=True)


class ChangeCreatedSchema(Schema):
    change = fields.Nested(ChangeSchema, required=True)
    entry = fields.Nested(
        EntryStateSchema,
        required=True,
        metadata={"description": "The entry's state today, after the change."},
    )


class ObservationCreatedSchema(Schema):
    observation = fields.Nested(ChangeSchema, required=True)
    entry = fields.Nested(
        EntryStateSchema,
        required=True,
        metadata={"description": "The entry's state today, after the observation."},
    )


class ListPatchSchema(Schema):
    """Descriptive fields only: what a list means (effect, completeness) is fixed at creation."""

    class Meta(Schema.Meta):
        json_schema = {"minProperties": 1}

    code = Line(validate=validate.Length(min=1, max=32))
    name = Line(validate=SHORT_TEXT)
    jurisdiction = Line(validate=validate.Length(min=1, max=64))
    authority = Line(validate=SHORT_TEXT)
    legal_basis = Line(validate=validate.Length(min=1, max=500))
    url = HttpUrl()
    description = Text(allow_none=True, validate=validate.Length(max=5000))
    sources = fields.List(
        fields.Nested(SourceSchema),
        validate=validate.Length(min=1, max=20, error="Between 1 and 20 sources: a list stays cited."),
    )

    @ma.validates_schema
    def not_empty(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError("Give at least one field to change.", "_body")


class ListCreateSchema(ListPatchSchema):
    class Meta(Schema.Meta):
        json_schema: dict = {}

    id = fields.String(
        required=True,
        validate=validate.Regexp(LIST_ID_PATTERN, error="Lower-case letters, digits and '-', 2-64 long."),
        metadata={"example": "eu-dual-use-annex-iib"},
    )
    code = Line(required=True, validate=validate.Length(min=1, max=32))
    name = Line(required=True, validate=SHORT_TEXT)
    jurisdiction = Line(required=True, validate=validate.Length(min=1, max=64))
    authority = Line(required=True, validate=SHORT_TEXT)
    legal_basis = Line(required=True, validate=validate.Length(min=1, max=500))
    url = HttpUrl(required=True)
    effect = fields.String(required=True, validate=validate.OneOf(EFFECTS))
    membership_complete = fields.Boolean(
        load_default=False,
        metadata={"description": "True only if every member is recorded: absence then means `not_listed`."},
    )
    membership_complete_from = StrictDate(allow_none=True, load_default=None)
    description = Text(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    sources = fields.List(fields.Nested(SourceSchema), load_default=list, validate=validate.Length(max=20))


# --- events ----------------------------------------------------------------------

EVENT_TYPES = [t.value for t in EventType]


class EventQuery(LimitQuery):
    after = QueryInteger(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_SEQUENCE),
        metadata={"description": "Only events with a larger sequence number: pass the last one you saw."},
    )
    country = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Only events about this country (any reference: `VN`, `Vietnam`)."},
    )
    list = fields.String(
        data_key="list",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Only events about this list (its id, or its code: `D:5`)."},
    )
    type = fields.String(
        validate=validate.OneOf(PUBLIC_EVENT_TYPES),
        metadata={"description": "Only this event type (webhook.* events are not in the feed)."},
    )
    since = RFC3339Field(metadata={"description": "Only events that occurred at or after this moment."})
    until = RFC3339Field(metadata={"description": "Only events that occurred before this moment."})

    @ma.validates_schema
    def ordered_moments(self, data, **_kwargs):
        """A window that ends before it starts is a mistake to point out, not an empty page."""
        if "since" in data and "until" in data and data["until"] < data["since"]:
            raise ma.ValidationError("Must not be before `since`.", "until")


class EventSchema(Schema):
    """An event, exactly as webhooks carry it (Standard Webhooks `type`, `timestamp`, `data`)."""

    id = fields.String(required=True, metadata={"example": "evt_512"})
    sequence = fields.Integer(
        required=True,
        metadata={
            "description": "Feed position, ascending in the order the events' writes committed. "
            "Operational events (not in the public feed) take numbers too, so the feed may skip some."
        },
    )
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    timestamp = fields.String(
        required=True, metadata={"format": "date-time", "description": "Same as occurred_at."}
    )
    occurred_at = fields.String(required=True, metadata={"format": "date-time"})
    data = fields.Dict(
        required=True,
        metadata={
            "description": "entry.status_changed: the change (country, list, from_status, status, "
            "effective_on, expected_effective_on, restrictions_apply, sources, links); list.*: the list; "
            "webhook.*: webhook_id and details."
        },
    )


class EventPageSchema(Schema):
    items = fields.List(fields.Nested(EventSchema), required=True)
    next_after = fields.Integer(
        required=True,
        metadata={"description": "Pass as `after` to continue (also when polling for new events)."},
    )
    has_more = fields.Boolean(required=True, metadata={"description": "More events are waiting right now."})


# --- webhooks --------------------------------------------------------------------


class WebhookFilters(Schema):
    countries = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        validate=validate.Length(max=300),
        metadata={"description": "Country references (any form); empty: every country."},
    )
    lists = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=100),
        metadata={"description": "List ids; empty: every list."},
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        validate=validate.Length(max=len(EVENT_TYPES)),
        metadata={
            "description": "Event types; empty: every data event. webhook.* (operational) events come "
            "only when named: about this subscription, or about every one for an admin key."
        },
    )


class WebhookCreateSchema(WebhookFilters):
    url = HttpUrl(required=True, metadata={"description": "Where events are POSTed."})
    description = Text(allow_none=True, validate=validate.Length(max=500))


class WebhookPatchSchema(WebhookFilters):
    class Meta(Schema.Meta):
        json_schema = {"minProperties": 1}

    url = HttpUrl()
    description = Text(allow_none=True, validate=validate.Length(max=500))
    enabled = fields.Boolean(metadata={"description": "true re-enables a disabled subscription."})

    @ma.validates_schema
    def not_empty(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError("Give at least one field to change.", "_body")


class WebhookLinksSchema(Schema):
    self = fields.String(required=True)
    deliveries = fields.String(required=True)


class WebhookSchema(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    countries = fields.List(fields.String(), required=True)
    lists = fields.List(fields.String(), required=True)
    event_types = fields.List(fields.String(), required=True)
    operations = fields.Boolean(
        required=True,
        metadata={
            "description": "Receives the webhook.* events of every subscription (set when an admin key "
            "names them in event_types); otherwise only those about this subscription, if named."
        },
    )
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(required=True, allow_none=True)
    disabled_at = UTCDateTimeField(required=True, allow_none=True)
    failing_since = UTCDateTimeField(required=True, allow_none=True)
    previous_secret_expires_at = UTCDateTimeField(
        required=True,
        allow_none=True,
        metadata={"description": "Until then, deliveries are signed with the previous secret too."},
    )
    created_by = fields.String(required=True, allow_none=True)
    created_at = UTCDateTimeField(required=True)
    updated_at = UTCDateTimeField(required=True)
    links = fields.Nested(WebhookLinksSchema, required=True)


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(
        required=True,
        metadata={
            "description": "The signing secret (whsec_…). Shown only now: store it.",
            "example": "whsec_…",
        },
    )


class SecretSchema(Schema):
    secret = fields.String(required=True, metadata={"description": "The new signing secret, shown only now."})
    previous_secret_expires_at = UTCDateTimeField(required=True)


WebhookPage = page_schema(WebhookSchema, "WebhookPage")


class AttemptSchema(Schema):
    attempted_at = UTCDateTimeField(required=True)
    duration_ms = fields.Integer(required=True)
    http_status = fields.Integer(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)
    response_body = fields.String(
        required=True, allow_none=True, metadata={"description": "The first 2 KiB of the response body."}
    )


class DeliverySchema(Schema):
    id = fields.Integer(required=True)
    webhook_id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    event_sequence = fields.Integer(required=True)
    event_type = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(values(DeliveryState)))
    reason = fields.String(
        required=True, allow_none=True, metadata={"description": "event, ping, redelivery, replay"}
    )
    attempts = fields.Integer(required=True)
    next_attempt_at = UTCDateTimeField(required=True, allow_none=True)
    last_status = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    created_at = UTCDateTimeField(required=True)
    completed_at = UTCDateTimeField(required=True, allow_none=True)
    attempt_log = fields.List(fields.Nested(AttemptSchema), required=True)


DeliveryPage = page_schema(DeliverySchema, "DeliveryPage")


class DeliveriesQuery(PageQuery):
    state = fields.String(validate=validate.OneOf(values(DeliveryState)))


class ReplaySchema(Schema):
    since = RFC3339Field(required=True)
    until = RFC3339Field(required=True)


class ReplayResultSchema(Schema):
    queued = fields.Integer(required=True, metadata={"description": "Deliveries queued for the window."})


# --- audit -----------------------------------------------------------------------


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    at = UTCDateTimeField(required=True)
    actor = fields.String(required=True, allow_none=True, metadata={"description": "The API key's name."})
    request_id = fields.String(required=True, allow_none=True)
    action = fields.String(required=True, metadata={"example": "webhook.updated"})
    subject = fields.String(required=True, metadata={"example": "webhook:3"})
    details = fields.Dict(required=True)


AuditPage = page_schema(AuditEntrySchema, "AuditPage")


class AuditQuery(PageQuery):
    subject = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Only entries about this subject, such as `webhook:3` or `list:us-ear-d1`."},
    )


# --- proposals -------------------------------------------------------------------

PROPOSAL_STATES = values(ProposalState)
PROPOSAL_ORIGINS = ["ecfr", "federal-register"]


class ProposalsQuery(PageQuery):
    status = fields.String(
        validate=validate.OneOf(PROPOSAL_STATES),
        metadata={"description": "Only proposals in this state (`pending` is the editor's queue)."},
    )
    list = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Only proposals about this list (id)."},
    )
    country = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Only proposals about this country (any reference: `VN`, `Vietnam`)."},
    )
    source = fields.String(
        validate=validate.OneOf(PROPOSAL_ORIGINS),
        metadata={"description": "Only proposals read from this publication: `ecfr` or `federal-register`."},
    )


class ProposalLinksSchema(Schema):
    self = fields.String(required=True)
    entry = fields.String(metadata={"description": "The entry the proposal would change."})
    change = fields.String(metadata={"description": "The change recorded by approving it."})


class ProposalSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(
        required=True,
        validate=validate.OneOf(["change", "review"]),
        metadata={
            "description": "`change`: a status for an entry, to approve or reject; `review`: a document "
            "the importer could not map to entries with confidence, for a person to read."
        },
    )
    state = fields.String(required=True, validate=validate.OneOf(PROPOSAL_STATES))
    origin = fields.String(required=True, validate=validate.OneOf(PROPOSAL_ORIGINS))
    list = fields.Nested(ListRefSchema, required=True, allow_none=True)
    country = fields.Nested(CountrySchema, required=True, allow_none=True)
    status = fields.String(required=True, allow_none=True, validate=validate.OneOf(STATUSES))
    effective_on = fields.Date(required=True, allow_none=True)
    expected_effective_on = fields.Date(required=True, allow_none=True)
    observed_status = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "What the service answered for that date when the proposal was made."},
    )
    base_version = fields.Integer(
        required=True,
        metadata={
            "description": "The entry's version then: a change recorded since makes the proposal stale."
        },
    )
    note = fields.String(required=True, allow_none=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)
    document = fields.Dict(
        required=True,
        metadata={"description": "The publication it was read from: `key`, title, dates, citation, url."},
    )
    created_at = UTCDateTimeField(required=True)
    created_by = fields.String(required=True, allow_none=True, metadata={"description": "Who imported it."})
    decided_at = UTCDateTimeField(required=True, allow_none=True)
    decided_by = fields.String(required=True, allow_none=True)
    reason = fields.String(
        required=True, allow_none=True, metadata={"description": "Why it was rejected, or how it went stale."}
    )
    change_id = fields.Integer(required=True, allow_none=True)
    links = fields.Nested(ProposalLinksSchema, required=True)


ProposalPage = page_schema(ProposalSchema, "ProposalPage")


class ProposalDetailSchema(ProposalSchema):
    current = fields.Nested(
        EntryStateSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The entry's state today, beside the proposed change (null for a review)."},
    )
    overtaken = fields.Boolean(
        required=True,
        metadata={
            "description": "The entry changed since the proposal was made: approving it marks it stale."
        },
    )


class ProposalDecisionSchema(Schema):
    proposal = fields.Nested(ProposalSchema, required=True)
    change = fields.Nested(ChangeSchema, required=True, allow_none=True)
    entry = fields.Nested(
        EntryStateSchema, required=True, allow_none=True, metadata={"description": "The entry's state today."}
    )


class RejectSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=5000),
        metadata={"description": "Why: kept with the proposal and in the audit log."},
    )


# --- changes between two dates --------------------------------------------------


class ChangesBetweenQuery(PageQuery):
    from_ = StrictDate(
        data_key="from",
        required=True,
        metadata={"description": "The earlier date (YYYY-MM-DD): the status you last screened against."},
    )
    to = StrictDate(metadata={"description": "The later date (YYYY-MM-DD). Default: today (UTC)."})
    country = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Only this country (any reference: `VN`, `Vietnam`)."},
    )
    list = fields.String(
        data_key="list",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Only this list (its id)."},
    )
    jurisdiction = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Only the lists this jurisdiction keeps (`US`, `EU`, ...)."},
    )
    known_at = KnownAt(
        metadata={
            "description": "Answer as the service would have at this moment (RFC 3339, not in the "
            "future). Default: now."
        }
    )

    @ma.validates_schema
    def ordered_dates(self, data, **_kwargs):
        to = data.get("to") or clock.today()
        if "from_" in data and data["from_"] > to:
            if "to" in data:
                raise ma.ValidationError("Must not be before `from`.", "to")
            raise ma.ValidationError("Must not be after `to`, which is today when left out.", "from")


class EntryMoveLinksSchema(Schema):
    history = fields.String(
        required=True,
        metadata={
            "description": "The entry with its whole history, newest first and paged "
            "(as known at `known_at` when given)."
        },
    )


class EntryMoveSchema(Schema):
    country = fields.Nested(CountrySchema, required=True)
    list = fields.Nested(ListRefSchema, required=True)
    from_ = fields.Nested(StandingSchema, data_key="from", required=True)
    to = fields.Nested(StandingSchema, required=True)
    restrictions_changed = fields.Boolean(
        required=True, metadata={"description": "Whether `restrictions_apply` differs between the dates."}
    )
    changes = fields.List(
        fields.Nested(ChangeSchema),
        required=True,
        metadata={
            "description": "The changes that took effect after `from`, up to and including `to`, "
            f"oldest first: the most recent {CHANGES_SHOWN} of them when there are more "
            "(`changes_total` says how many; `links.history` pages through them all)."
        },
    )
    changes_total = fields.Integer(
        required=True,
        metadata={
            "description": "How many changes took effect between the dates (`changes` may hold fewer)."
        },
    )
    links = fields.Nested(EntryMoveLinksSchema, required=True)


class ChangesBetweenSchema(Schema):
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True)
    known_at = UTCDateTimeField(required=True, allow_none=True)
    count = fields.Integer(
        required=True, metadata={"description": "How many entries moved, on every page together."}
    )
    entries = fields.List(
        fields.Nested(EntryMoveSchema),
        required=True,
        metadata={
            "description": "This page's entries whose status on `to` differs from their status on `from`."
        },
    )
    unknown_count = fields.Integer(
        required=True,
        metadata={
            "description": "How many entries are `unknown` on one of the dates, on every page together."
        },
    )
    # Not `unknown`: that name is Schema's own option (what to do with unknown fields on load).
    unknown_ = fields.List(
        fields.Nested(EntryMoveSchema),
        required=True,
        attribute="unknown",
        data_key="unknown",
        metadata={
            "description": "This page's entries `unknown` on either date, whose status therefore cannot "
            "be said to have changed (moving from not yet observed to observed is not news)."
        },
    )
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as `cursor` for the next page; null on the last page."},
    )


# --- freshness -----------------------------------------------------------------

CHECK_FINDINGS = ["unchanged", "differences"]


class ListCheckCreateSchema(Schema):
    source = fields.Nested(
        SourceSchema, required=True, metadata={"description": "What the list was compared with."}
    )
    found = fields.String(
        required=True,
        validate=validate.OneOf(CHECK_FINDINGS),
        metadata={
            "description": "`unchanged`: the list agrees with its source. `differences`: it does not; record "
            "the changes separately (a check records none)."
        },
    )
    as_of = StrictDate(
        load_default=None,
        metadata={"description": "The date the source speaks for (YYYY-MM-DD). Default: today."},
    )
    note = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=5000))

    @ma.validates("as_of")
    def not_future(self, value, **_kwargs):
        if value is not None and value > clock.today():
            raise ma.ValidationError("A check speaks for a date that has come; not in the future.")


class ListCheckSchema(Schema):
    id = fields.Integer(required=True)
    list_id = fields.String(required=True)
    as_of = fields.Date(required=True)
    checked_at = UTCDateTimeField(required=True)
    origin = fields.String(required=True, metadata={"description": "`manual`, `ecfr`, `federal-register`."})
    source = fields.Dict(required=True)
    found = fields.String(required=True, validate=validate.OneOf(CHECK_FINDINGS))
    note = fields.String(required=True, allow_none=True)
    actor = fields.String(required=True, allow_none=True)


class ListFreshnessSchema(Schema):
    list = fields.Nested(ListRefSchema, required=True)
    checked_at = UTCDateTimeField(
        required=True,
        allow_none=True,
        metadata={"description": "When the membership was last checked against its source."},
    )
    check_origin = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "`manual`, `ecfr`, `federal-register`, or `reference` (never checked since "
            "loaded: the date of the reference it was loaded from)."
        },
    )
    check_source = fields.Nested(SourceSchema, required=True, allow_none=True)
    found = fields.String(required=True, allow_none=True, validate=validate.OneOf(CHECK_FINDINGS))
    changed_at = UTCDateTimeField(
        required=True, allow_none=True, metadata={"description": "When a change to it was last recorded."}
    )
    age_days = fields.Integer(required=True, allow_none=True)
    max_age_days = fields.Integer(required=True)
    publishes_amendments = fields.Boolean(
        required=True, metadata={"description": "Its source publishes amendments (eCFR, Federal Register)."}
    )
    stale = fields.Boolean(required=True, metadata={"description": "Unchecked for longer than max_age_days."})


class ServiceStatusSchema(Schema):
    now = UTCDateTimeField(required=True)
    stale_count = fields.Integer(required=True)
    lists = fields.List(fields.Nested(ListFreshnessSchema), required=True)


# --- snapshots -----------------------------------------------------------------


class SnapshotQuery(TimeQuery):
    format = fields.String(
        load_default="csv",
        validate=validate.OneOf(["csv", "jsonl"]),
        metadata={
            "description": "`csv` (RFC 4180, a header row) or `jsonl` (one entry a line). Default csv."
        },
    )


# --- signed receipts -----------------------------------------------------------


class ReceiptRequestSchema(Schema):
    country = Line(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "The country, as `GET /v1/countries/{ref}` takes it: `VN`, `VNM`, `704`, "
            "`Vietnam`.",
            "example": "VN",
        },
    )
    lists = fields.List(
        Line(validate=validate.Length(min=1, max=64)),
        load_default=None,
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "Only these lists (ids such as `us-ear-d1`, or codes such as `D:1`), as the "
            "lookup's `list` parameter. Default: every list.",
            "example": ["us-ear-d1", "us-ear-d3"],
        },
    )
    as_of = StrictDate(
        load_default=None,
        metadata={"description": "The date the answer is for (YYYY-MM-DD). Default: today (UTC)."},
    )


class ReceiptRequestEchoSchema(Schema):
    """The request a receipt answers, with the moment it was answered as known at."""

    country = fields.String(required=True, metadata={"description": "Alpha-2 code.", "example": "VN"})
    lists = fields.List(
        fields.String(),
        required=True,
        allow_none=True,
        metadata={"description": "The list ids the answer is limited to; null for every list."},
    )
    as_of = fields.Date(required=True)
    known_at = UTCDateTimeField(
        required=True,
        metadata={
            "description": "The moment the answer was given as known at (the issue time): "
            "`GET /v1/countries/{country}?as_of=&known_at=` this gives the same answer."
        },
    )


class ReceiptLinksSchema(Schema):
    self = fields.String(required=True)
    jwks = fields.String(required=True, metadata={"description": "The public keys that verify `jws`."})
    reproduce = fields.String(
        required=True, metadata={"description": "The lookup that reproduces `answer` (as known at issue)."}
    )


class ReceiptPayloadSchema(Schema):
    """What a receipt's JWS signs: every field of the receipt but `jws`."""

    id = fields.String(required=True, metadata={"example": "rcp_3q2H0xYb1kZP6n7t9VwA5g"})
    issued_at = UTCDateTimeField(required=True)
    request = fields.Nested(ReceiptRequestEchoSchema, required=True)
    answer = fields.Nested(
        CountryStatusSchema,
        required=True,
        metadata={
            "description": "The answer of `GET /v1/countries/{country}` for the request, with sources."
        },
    )
    data_version = fields.Integer(
        required=True,
        metadata={"description": "The data version the answer reflects (as snapshots name it)."},
    )
    event_sequence = fields.Integer(
        required=True,
        metadata={
            "description": "The last event the answer reflects: `GET /v1/events?after=` it for what followed."
        },
    )
    key_name = fields.String(required=True, metadata={"description": "The name of the API key that asked."})
    kid = fields.String(required=True, metadata={"description": "The signing key (its RFC 7638 thumbprint)."})
    links = fields.Nested(ReceiptLinksSchema, required=True)


class ReceiptSchema(ReceiptPayloadSchema):
    jws = fields.String(
        required=True,
        metadata={
            "description": "Compact JWS (RFC 7515), EdDSA over Ed25519, header `kid` and "
            "`typ: exportctl-receipt+jws`, whose payload is this receipt without `jws` (JSON). Verify it "
            "with `/.well-known/jwks.json` or `exportctl receipts verify`."
        },
    )


class JwkSchema(Schema):
    kty = fields.String(required=True, metadata={"example": "OKP"})
    crv = fields.String(required=True, metadata={"example": "Ed25519"})
    x = fields.String(required=True, metadata={"description": "The public key (base64url)."})
    kid = fields.String(required=True)
    use = fields.String(required=True, metadata={"example": "sig"})
    alg = fields.String(required=True, metadata={"example": "EdDSA"})


class JwksSchema(Schema):
    keys = fields.List(
        fields.Nested(JwkSchema),
        required=True,
        metadata={"description": "Every receipt signing key, current and retired."},
    )
