"""What an importer reports when a document is not what it can read."""

from service.domain.errors import DomainError


class UnrecognisedFormat(DomainError):
    """A document shape the importer does not recognise: refused whole, never half-read."""


class FetchFailed(Exception):
    """A remote API could not be read (after retries)."""
