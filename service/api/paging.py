"""Keyset pages over an ordered sequence: the cursor is the last item's key, never an offset."""

from collections.abc import Callable, Sequence
from typing import Any

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


def cache_key(cursor: Any) -> Any:
    """A decoded cursor in a hashable form, for cache keys."""
    if isinstance(cursor, list):
        return tuple(cache_key(item) for item in cursor)
    return cursor


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
