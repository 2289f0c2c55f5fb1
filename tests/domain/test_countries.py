"""Country references: codes and names in any case, with suggestions for near misses."""

import pytest

from service.domain.countries import registry


@pytest.mark.parametrize(
    ("reference", "alpha_2"),
    [
        ("VN", "VN"),
        ("vnm", "VN"),
        ("704", "VN"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("Korea, North", "KP"),
        ("North Korea", "KP"),
        ("Burma", "MM"),
        ("Bosnia & Herzegovina", "BA"),
        ("Cote d'Ivoire", "CI"),
        ("côte d’ivoire", "CI"),
        ("China (PRC)", "CN"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("XK", "XK"),
        ("Kosovo", "XK"),
        ("  fr ", "FR"),
        ("40", "AT"),
        ("040", "AT"),
    ],
)
def test_references_resolve(reference, alpha_2):
    assert registry().resolve(reference).alpha_2 == alpha_2


@pytest.mark.parametrize("reference", ["XX", "", "Narnia", "1234"])
def test_unknown_references_do_not_resolve(reference):
    assert registry().resolve(reference) is None


def test_suggestions_for_a_misspelling():
    assert registry().suggest("Germny")[0].alpha_2 == "DE"
    assert registry().suggest("") == []


def test_every_iso_country_and_kosovo():
    assert len(registry()) == 250
