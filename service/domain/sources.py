"""Sources: what each fact rests on, and how strong that evidence is."""

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from service.domain.statuses import EvidenceKind, strongest

# The regulators' own sites: a source there is the regulation itself.
REGULATION_HOSTS = ("federalregister.gov", "ecfr.gov", "govinfo.gov")


def inferred_kind(url: str | None) -> EvidenceKind:
    """`regulation` on a regulator's own site, else `secondary` (the cautious reading)."""
    try:
        host = (urlsplit(url or "").hostname or "").lower()
    except ValueError:
        host = ""
    if any(host == h or host.endswith("." + h) for h in REGULATION_HOSTS):
        return EvidenceKind.REGULATION
    return EvidenceKind.SECONDARY


def with_kind(source: dict[str, Any]) -> dict[str, Any]:
    """The source with its `kind`, inferred from its URL when it was not given."""
    if source.get("kind"):
        return source
    return {**source, "kind": inferred_kind(source.get("url")).value}


def evidence_of(sources: Iterable[dict[str, Any]]) -> str | None:
    """The strongest kind among these sources."""
    kind = strongest(with_kind(s)["kind"] for s in sources)
    return kind.value if kind else None


def at_least(evidence: str | None, minimum: EvidenceKind) -> bool:
    return evidence is not None and EvidenceKind(evidence).strength >= minimum.strength
