"""Why an import refuses a document."""

from service.domain.errors import DomainError


class UnrecognisedFormat(DomainError):
    """The document is not in a shape the parser knows: refuse it whole, never a partial table."""

    status = 422
    slug = "unrecognised-document"
    title = "Unrecognised document"


class FetchFailed(Exception):
    """A remote API could not be read (after retries)."""
