"""Failures the domain reports. The HTTP layer turns each into a problem document."""

from typing import Any


class DomainError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extensions: Any):
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class UnknownCountry(NotFound):
    slug = "unknown-country"
    title = "Unknown country"


class UnknownList(NotFound):
    slug = "unknown-list"
    title = "Unknown list"


class InvalidInput(DomainError):
    """Input that parses but breaks a rule; `errors` maps each field to its messages."""

    status = 422
    slug = "validation-error"
    title = "Invalid request"

    def __init__(self, detail: str, errors: dict[str, list[str]], **extensions: Any):
        super().__init__(detail, errors=errors, **extensions)


class IllegalTransition(DomainError):
    status = 409
    slug = "illegal-transition"
    title = "Illegal status transition"


class TreatedAsAnother(DomainError):
    """On this list the country takes another's status, so it has no entry of its own to change."""

    status = 409
    slug = "treated-as-another-country"
    title = "Country treated as another on this list"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class ConcurrentUpdate(DomainError):
    """Another writer changed the entry between our read and our write."""

    status = 409
    slug = "concurrent-update"
    title = "Concurrent update"


class VersionMismatch(DomainError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"
