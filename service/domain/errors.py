"""Failures the domain reports, by meaning only. The HTTP edge (service/errors.py) maps each
class to its status and problem type, once."""

from typing import Any


class DomainError(Exception):
    def __init__(self, detail: str, **extensions: Any):
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(DomainError):
    """Nothing exists by that name."""


class UnknownCountry(NotFound):
    """No country matches the reference; `suggestions` lists close matches."""


class UnknownList(NotFound):
    """No list has that id; `known_lists` lists the ids there are."""


class InvalidInput(DomainError):
    """Input that parses but breaks a rule; `errors` maps each field to its messages."""

    def __init__(self, detail: str, errors: dict[str, list[str]], **extensions: Any):
        super().__init__(detail, errors=errors, **extensions)


class IllegalTransition(DomainError):
    """The status cannot follow the one in force at that date."""


class TreatedAsAnother(DomainError):
    """On this list the country takes another's status, so it has no entry of its own to change."""


class Conflict(DomainError):
    """The request conflicts with the current state (an id taken, a subscription disabled)."""


class ConcurrentUpdate(DomainError):
    """Another writer changed the entry between our read and our write."""


class ProposalStale(Conflict):
    """A proposal overtaken by a change recorded since it was made (it is kept, marked stale)."""


class VersionMismatch(DomainError):
    """The entry is no longer at the version the writer expected (If-Match)."""
