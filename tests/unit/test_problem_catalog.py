"""The problem catalogue: every code the gateway can emit has a page that explains it.

The codes are gathered from the code base itself (every literal code an error class,
a policy rule, a store adapter or the web layer names), from the contract's §4 table
and from the policy's §4.2 order, so a new code without a page fails here by name. And
each code has one exception class on each side, the server's (gateway.errors) and the
SDK's (gateway_client.errors), both with the table's status.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import gateway_client.errors as sdk
from gateway import errors as server
from gateway.errors import ERROR_CLASSES, PROBLEMS, GatewayError, error_for
from gateway.policy.decide import PROBLEM_ORDER
from gateway.web.problems import problem_response
from gateway_client.problems import (
    CATALOGUE,
    LEGACY_PROBLEM_BASE,
    PROBLEM_PATH,
    ProblemKind,
    problem_code,
)

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"

# Where the code base names a problem code literally.
RAISE_SITES = (
    re.compile(r"^    code = \"([a-z_]+)\"$", re.MULTILINE),  # the class of a code
    re.compile(r"error_for\(\s*\"([a-z_]+)\""),  # error_for("code", …)
    re.compile(r"Violation\(\s*\"([a-z_]+)\""),  # the policy's rules
    re.compile(r"^\s*\d{3}: \"([a-z_]+)\",$", re.MULTILINE),  # HTTP status -> code tables
)


def codes_in_source() -> dict[str, str]:
    """Every literal problem code in gateway/, with the first file naming it."""
    found: dict[str, str] = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in RAISE_SITES:
            for code in pattern.findall(text):
                found.setdefault(code, str(path.relative_to(ROOT)))
    return found


def codes_in_contract() -> set[str]:
    """The codes of CONTRACT §4's table (the rows between its header and §4.1)."""
    text = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    section = text[text.index("## 4. HTTP API") : text.index("### 4.1")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_the_source_scan_finds_the_raise_sites() -> None:
    found = codes_in_source()
    # The scan itself must work: these are raised in well-known places.
    assert {"log_unavailable", "partner_timeout", "circuit_open", "consent_required"} <= set(found)
    assert len(found) >= 20, sorted(found)


def test_every_code_the_gateway_can_emit_has_a_page() -> None:
    missing = {code: where for code, where in codes_in_source().items() if code not in CATALOGUE}
    assert not missing, f"add these codes to gateway_client/problems.py: {missing}"
    for source, codes in {
        "errors.PROBLEMS": set(PROBLEMS),
        "policy.PROBLEM_ORDER": set(PROBLEM_ORDER),
        "docs/CONTRACT.md §4": codes_in_contract(),
    }.items():
        lacking = codes - set(CATALOGUE)
        assert not lacking, f"{source} has codes without a page: {lacking}"
    assert set(PROBLEMS) == set(CATALOGUE)


@pytest.mark.parametrize("kind", CATALOGUE.values(), ids=list(CATALOGUE))
def test_every_page_says_meaning_causes_fix_and_retry(kind: ProblemKind) -> None:
    assert 400 <= kind.status <= 599 and kind.title.strip()
    for name in ("meaning", "fix", "retry"):
        text = getattr(kind, name)
        assert len(text.strip()) >= 20, f"{kind.code}: '{name}' says too little"
    assert kind.causes and all(cause.strip() for cause in kind.causes), kind.code
    for text in (kind.meaning, kind.fix, kind.retry, *kind.causes):
        assert text.count("`") % 2 == 0, f"{kind.code}: unbalanced ` in {text[:40]!r}"
    assert kind.type == f"{PROBLEM_PATH}{kind.code}"
    assert error_for(kind.code, "d").problem()["type"] == f"/problems/{kind.code}"


@pytest.mark.parametrize("kind", CATALOGUE.values(), ids=list(CATALOGUE))
def test_the_retry_rule_is_written_down_for_every_code(kind: ProblemKind) -> None:
    if kind.status in (429, 502, 503, 504):
        # Every gateway-side failure, and a load limit, can pass by itself in some case: the
        # page says when.
        assert kind.retry_after_when, f"{kind.code}: say when Retry-After is sent"
        assert "Retry-After" in kind.retry
    else:
        assert kind.retry_after_s is None and not kind.retry_after_when, kind.code
    if kind.retry_after_s is not None:
        assert math.isfinite(kind.retry_after_s) and kind.retry_after_s >= 1


@pytest.mark.parametrize("kind", CATALOGUE.values(), ids=list(CATALOGUE))
def test_problem_response_sends_retry_after_by_the_catalogues_rule(kind: ProblemKind) -> None:
    response = problem_response(error_for(kind.code, "d"))
    if kind.retry_after_s is None:
        assert "Retry-After" not in response.headers
    else:
        assert response.headers["Retry-After"] == str(math.ceil(kind.retry_after_s))
    # The raise site's own figure wins, rounded up to whole seconds (never 0).
    response = problem_response(error_for(kind.code, "d", retry_after_s=2.2))
    assert response.headers["Retry-After"] == "3"
    response = problem_response(error_for(kind.code, "d", retry_after_s=0.01))
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    "type_uri", ["/problems/consent_required", LEGACY_PROBLEM_BASE + "consent_required"]
)
def test_problem_code_reads_the_new_and_the_legacy_type(type_uri: str) -> None:
    assert problem_code(type_uri) == "consent_required"


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown problem code"):
        error_for("no_such_code", "d")
    with pytest.raises(TypeError, match="family"):
        server.DisclosureRefusal("a family has no code: raise the class of one")


def per_code_classes(base: type) -> list[type]:
    """Every class under `base` that names a code of its own (subclasses such as
    StoreUnavailable inherit theirs and do not count; the bases name none)."""
    found = [base] if vars(base).get("code") else []
    for sub in base.__subclasses__():
        found += per_code_classes(sub)
    return found


# What the caller does next: the server's family and the SDK's are the same grouping.
FAMILIES = {
    server.RequestError: sdk.CallerError,
    server.ConsentRefusal: sdk.ConsentProblem,
    server.DisclosureRefusal: sdk.DisclosureRefused,
    server.GatewayFailure: sdk.RetryableProblem,
    server.PartnerFailure: sdk.PartnerProblem,
}


def test_every_code_has_one_server_class_and_one_sdk_class_with_its_status() -> None:
    servers = per_code_classes(GatewayError)
    sdks = per_code_classes(sdk.GatewayProblem)
    for side, classes in (("gateway.errors", servers), ("gateway_client.errors", sdks)):
        codes = [cls.code for cls in classes]
        assert sorted(codes) == sorted(CATALOGUE), f"{side}: one class per code, no more"
    assert dict(ERROR_CLASSES) == {cls.code: cls for cls in servers}
    assert dict(sdk.PROBLEM_CLASSES) == {cls.code: cls for cls in sdks}
    for code, kind in CATALOGUE.items():
        mine, theirs = ERROR_CLASSES[code], sdk.PROBLEM_CLASSES[code]
        assert mine.status == theirs.status == kind.status, code
        assert (mine.code, mine.title) == (theirs.code, kind.title) == (code, kind.title)
        # Named apart, so one module imports both: the SDK's name + "Error".
        expected = "InternalServerError" if code == "internal_error" else theirs.__name__ + "Error"
        assert mine.__name__ == expected, code
        family = next(f for f in FAMILIES if issubclass(mine, f))
        assert issubclass(theirs, FAMILIES[family]), (code, family, theirs.__mro__)
        assert mine.__doc__ and theirs.__doc__, code


def test_the_pages_name_a_rejected_lawful_request() -> None:
    # A rejection is a state now: its 403 at disclosure and its 409 at approve/reject are
    # explained on /problems/legal_request_required and /problems/conflict.
    pages = CATALOGUE
    assert any("rejected" in cause for cause in pages["legal_request_required"].causes)
    assert "new request" in pages["legal_request_required"].fix
    assert any("already rejected" in cause for cause in pages["conflict"].causes)
