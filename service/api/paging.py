"""Keyset pages over an ordered sequence: the cursor is the last item's key, never an offset.

Every paged document also links its next page in a `Link` header (RFC 8288,
`rel="next"`): the request's own URL with only the cursor replaced, so the
filters and the page size carry over and a client can follow links blindly.
"""

from collections.abc import Callable, Sequence
from typing import Any

from flask import g, request, url_for

from service.domain.errors import InvalidInput
from service.schemas import encode_cursor


def page(
    items: Sequence[Any],
    key: Callable[[Any], Any],
    limit: int,
    cursor: Any = None,
    *,
    descending: bool = False,
) -> dict[str, Any]:
    """Items after `cursor` in `key` order (items must already be in that order)."""
    if cursor is not None:
        try:
            if descending:
                items = [item for item in items if key(item) < cursor]
            else:
                items = [item for item in items if key(item) > cursor]
        except TypeError as exc:
            raise InvalidInput(
                "Invalid query parameter 'cursor'.",
                {"cursor": ["Not a cursor for this collection."]},
            ) from exc
    selected = list(items[:limit])
    more = len(items) > limit
    return {
        "items": selected,
        "next_cursor": encode_cursor(key(selected[-1])) if more and selected else None,
    }


def id_cursor(cursor: Any) -> int | None:
    """A cursor that must hold a row id (newest-first logs page back from it)."""
    if cursor is None:
        return None
    if not isinstance(cursor, int) or isinstance(cursor, bool) or not 0 < cursor < 2**31:
        raise InvalidInput(
            "Invalid query parameter 'cursor'.", {"cursor": ["Not a cursor for this collection."]}
        )
    return cursor


def id_page(rows: list, limit: int) -> dict[str, Any]:
    """A page of rows fetched newest first with limit + 1 (the extra row says there is more)."""
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": encode_cursor(rows[limit - 1].id) if more else None}


def next_page(data: Any) -> dict[str, str] | None:
    """The query parameters that fetch the page after `data` (a paged document), if there is one."""
    if not isinstance(data, dict):
        return None
    if data.get("next_cursor") is not None:
        return {"cursor": str(data["next_cursor"])}
    if data.get("has_more") and data.get("next_after") is not None:  # the events feed
        return {"after": str(data["next_after"])}
    return None


def forget_next_page() -> None:
    """Before a request: nothing to link yet (an app context can outlive one request in tests)."""
    g.pop("next_page", None)


def link_next_page(response):
    """After a request: the Link header to the next page, when the view served a paged document."""
    params = g.get("next_page")
    if params is None or request.endpoint is None or response.status_code not in (200, 304):
        return response
    query = request.args.to_dict(flat=False)
    query.update(params)
    url = url_for(request.endpoint, _external=True, **(request.view_args or {}), **query)
    response.headers.add("Link", f'<{url}>; rel="next"')
    return response
