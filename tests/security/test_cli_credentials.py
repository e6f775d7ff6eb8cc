"""Issue 16 item 8: every CLI command that acts for a person proves who `--as` names with
that person's own credential — a review-page account's password (stdin, env, or a prompt;
never argv) or a caller's bearer token checked as the API checks it. Without one the command
exits 2 and changes nothing: a shell on the host no longer satisfies the two-reviewer rule."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from support.cli import legal_request_create, run_cli
from support.credentials import PASSWORD, token_of, with_reviewer


@pytest.fixture
def root(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return with_reviewer(project, tmp_path, monkeypatch)


def run(root: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        import sys

        sys.stdin = io.StringIO(stdin)
    return run_cli(root, *args)


def register(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "privacy-office"))
    code, out, err = run(root, *legal_request_create("R/1", "privacy-office", "--quiet"))
    monkeypatch.delenv("GATEWAY_TOKEN")
    assert code == 0, err
    return out.strip()


def approvals(root: Path, request_id: str) -> list[str]:
    code, out, _ = run(root, "legal-request", "list", "--format", "json")
    assert code == 0
    [record] = [r for r in json.loads(out) if r["id"] == request_id]
    return [a["reviewer"] for a in record["approvals"]]


def test_a_name_alone_approves_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request_id = register(root, monkeypatch)
    for who in ("reviewer-alice", "reviewer-bob", "reviewer-carol"):
        code, _, err = run(root, "legal-request", "approve", request_id, "--as", who, stdin="")
        assert code == 2 and "no credential" in err and "nothing was changed" in err, err
    assert approvals(root, request_id) == []


@pytest.mark.parametrize("token_of_whom", ["reviewer-alice", "privacy-office", "sales-service"])
def test_another_persons_token_proves_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch, token_of_whom: str
) -> None:
    request_id = register(root, monkeypatch)
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, token_of_whom))
    code, _, err = run(root, "legal-request", "approve", request_id, "--as", "reviewer-bob")
    assert code == 2 and f"{token_of_whom!r}'s, not 'reviewer-bob'" in err
    assert approvals(root, request_id) == []


ALG_NONE = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyZXZpZXdlci1ib2IifQ."  # {"alg":"none"}, sub bob


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ALG_NONE])
def test_a_forged_or_broken_token_proves_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    request_id = register(root, monkeypatch)
    monkeypatch.setenv("GATEWAY_TOKEN", token)
    code, _, err = run(root, "legal-request", "approve", request_id, "--as", "reviewer-bob")
    assert code == 2 and "does not prove 'reviewer-bob'" in err
    assert approvals(root, request_id) == []


def test_a_token_on_stdin_is_read_too(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request_id = register(root, monkeypatch)
    code, _, err = run(
        root,
        "legal-request",
        "approve",
        request_id,
        "--as",
        "reviewer-bob",
        "--token-stdin",
        stdin=token_of(root, "reviewer-bob") + "\n",
    )
    assert code == 0, err
    assert approvals(root, request_id) == ["reviewer-bob"]


def test_the_review_page_password_proves_an_account(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = register(root, monkeypatch)
    base = ("legal-request", "approve", request_id, "--as", "reviewer-carol")
    code, _, err = run(root, *base, "--password-stdin", stdin="not the password\n")
    assert code == 2 and "does not match" in err and "not the password" not in err
    assert approvals(root, request_id) == []
    code, _, err = run(root, *base, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert approvals(root, request_id) == ["reviewer-carol"]


def test_the_password_from_the_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request_id = register(root, monkeypatch)
    monkeypatch.setenv("GATEWAY_PASSWORD", PASSWORD)
    code, _, err = run(
        root, "legal-request", "approve", request_id, "--as", "reviewer-carol", stdin=""
    )
    assert code == 0, err


def test_an_account_is_not_proven_by_a_token(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request_id = register(root, monkeypatch)
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-alice"))
    code, _, err = run(root, "legal-request", "approve", request_id, "--as", "reviewer-carol")
    assert code == 2 and "review-page account" in err


def test_no_password_option_on_the_command_line(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = register(root, monkeypatch)
    with pytest.raises(SystemExit) as refused:
        run(
            root,
            "legal-request",
            "approve",
            request_id,
            "--as",
            "reviewer-carol",
            "--password",
            PASSWORD,
        )
    assert refused.value.code == 2
    assert approvals(root, request_id) == []


def test_registering_needs_the_registrants_credential(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = (
        "legal-request",
        "create",
        "--authority",
        "Police",
        "--reference",
        "R/2",
        "--instrument",
        "order",
        "--subject",
        "s-1",
        "--partner",
        "vientiane-police",
        "--as",
        "privacy-office",
    )
    code, _, err = run(root, *args, stdin="")
    assert code == 2 and "no credential" in err
    code, out, _ = run(root, "legal-request", "list", "--format", "json")
    assert json.loads(out) == []


def test_suspend_and_resume_need_a_reviewers_credential(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suspend = ("partners", "suspend", "veriid", "--reason", "INC-1", "--as", "reviewer-bob")
    resume = ("partners", "resume", "veriid", "--as", "reviewer-bob")
    assert run(root, *suspend, stdin="")[0] == 2
    code, out, _ = run(root, "partners", "suspensions", "--format", "json")
    assert "veriid" not in out
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "privacy-office"))
    code, _, err = run(root, *suspend[:-1], "privacy-office")
    assert code == 2 and "not a reviewer" in err  # a rights officer, not a reviewer
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-bob"))
    code, out, err = run(root, *suspend)
    assert code == 0, err
    assert json.loads(out)["by"] == "reviewer-bob"
    monkeypatch.delenv("GATEWAY_TOKEN")
    assert run(root, *resume, stdin="")[0] == 2
    code, _, err = run(
        root, *resume[:-1], "reviewer-carol", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err


def test_consent_grant_and_withdraw_need_a_consent_writers_credential(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = (
        "consent",
        "grant",
        "--subject",
        "s-9",
        "--purpose",
        "service_provision",
        "--partner",
        "lao-credit-bureau",
        "--policy-version",
        "2024-09-30",
        "--as",
        "customer-app",
    )
    assert run(root, *grant, stdin="")[0] == 2
    assert json.loads(run(root, "consent", "list", "s-9")[1]) == []
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "customer-app"))
    code, out, err = run(root, *grant)
    assert code == 0, err
    consent_id = json.loads(out)["id"]
    monkeypatch.delenv("GATEWAY_TOKEN")
    withdraw = ("consent", "withdraw", consent_id, "--as", "customer-app")
    assert run(root, *withdraw, stdin="")[0] == 2
    assert json.loads(run(root, "consent", "list", "s-9")[1])[0]["withdrawn_at"] is None
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "customer-app"))
    assert run(root, *withdraw)[0] == 0
