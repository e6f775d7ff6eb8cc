"""The review pages' words for codes (gateway/web/review/labels.py): every code of the
vocabulary has words, problem codes take the catalogue's titles, the code stays on hover,
and a code the table does not know is shown as itself."""

from __future__ import annotations

from gateway import vocabulary as v
from gateway.log.columns import OUTCOMES
from gateway.log.entries import ACTIONS
from gateway.problem_catalog import CATALOGUE
from gateway.web.review import labels
from gateway.web.review.site import templates_environment


def test_every_code_of_the_vocabulary_has_words():
    for codes in (
        v.PURPOSES,
        v.LEGAL_BASES,
        v.PARTNER_CATEGORIES,
        tuple(v.FIELD_CATEGORIES),
        OUTCOMES,
        tuple(ACTIONS),
        tuple(CATALOGUE),
        ("pending", "approved", "rejected", "refused"),
    ):
        for code in codes:
            words = labels.label_of(code)
            assert words != code and "_" not in words, code


def test_problem_codes_read_as_the_catalogue_titles():
    assert labels.label_of("consent_required") == CATALOGUE["consent_required"].title
    assert labels.label_of("legal_obligation") == "Legal obligation"


def test_a_code_in_two_tables_means_the_same_in_both():
    tables = [
        {code: kind.title for code, kind in CATALOGUE.items()},
        labels.PURPOSES,
        labels.LEGAL_BASES,
        labels.OUTCOMES,
        labels.PARTNER_CATEGORIES,
        labels.FIELD_CATEGORIES,
        {a: a.replace("_", " ").capitalize() for a in ACTIONS},
    ]
    seen: dict[str, str] = {}
    for table in tables:
        for code, words in table.items():
            assert seen.setdefault(code, words) == words, code


def test_the_filter_shows_words_and_the_code_on_hover():
    env = templates_environment()
    html = env.from_string("{{ code|label }}").render(code="legal_obligation")
    assert html == '<span class="label" title="legal_obligation">Legal obligation</span>'
    lawful = env.from_string('{{ "pending"|label("lawful_request") }}').render()
    assert lawful == '<span class="label" title="pending">Awaiting approval</span>'
    assert env.from_string("{{ code|label }}").render(code="pending") == (
        '<span class="label" title="pending">Pending</span>'
    )
    # Unknown: the code itself, escaped; nothing: a dash.
    assert env.from_string("{{ code|label }}").render(code="<b>new</b>") == "&lt;b&gt;new&lt;/b&gt;"
    assert env.from_string("{{ code|label }}").render(code=None) == "—"
    assert env.from_string("{{ code|words }}").render(code="marketing") == "Marketing"
    assert labels.label("consent") == "Consent (consent)"
    assert labels.label("new_code") == "new_code"


def test_a_notice_s_kind_and_last_error_read_as_words():
    env = templates_environment()
    kind = env.from_string('{{ "consent_withdrawn"|label("notice") }}').render()
    assert kind == '<span class="label" title="consent_withdrawn">Consent withdrawal</span>'
    assert labels.label_of("erasure", "notice") == "Erasure"
    assert labels.label_of("partner_unavailable") == "Partner unavailable"
    assert env.from_string("{{ code|label }}").render(code="partner_status_422") == (
        '<span class="label" title="partner_status_422">Partner answered HTTP 422</span>'
    )
    assert labels.label_of("partner_status_4222") == "partner_status_4222"
