"""`gateway tokens revoke --person ID` (a leaver's personal API tokens and review-site
sessions, on SQLite and PostgreSQL): every usable token of that person revoked, each first
a `revoke_personal_token` action entry naming who revoked it and how they were proven, and
their live sessions ended after one `end_sessions` entry."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.cli import run_cli, run_cli_in_thread
from support.credentials import PASSWORD, REVIEWER, with_reviewer

from gateway.clock import utc_now
from gateway.store import open_store
from gateway.web.review.personal_tokens import mint

if TYPE_CHECKING:
    from conftest import Backend

LEAVER = "https://login.example.com#7d3f0c2a-leaver"
STAYER = "https://login.example.com#0b1e4d55-stayer"
ROLES = frozenset({"reviewer"})
SESSION = timedelta(hours=8)


@pytest.fixture
def root(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: Backend) -> Path:
    copy = with_reviewer(project, tmp_path, monkeypatch)
    config = copy / "config.toml"
    url = backend.url
    config.write_text(
        config.read_text().replace('url = "sqlite:///var/gateway.db"', f'url = "{url}"', 1)
    )
    return copy


async def tokens_made(root: Path, url: str) -> dict[str, str]:
    """Two usable tokens and an expired one of the leaver, one of someone else: their ids.
    The leaver and the other person each have a live site session too."""
    now = utc_now()
    made = {
        "first": mint(LEAVER, ROLES, now, 30),
        "second": mint(LEAVER, ROLES, now, 7),
        "expired": mint(LEAVER, ROLES, now - timedelta(days=8), 7),
        "stayer": mint(STAYER, ROLES, now, 30),
    }
    store = await open_store(url, root)
    try:
        for minted in made.values():
            await store.add_personal_token(minted.record)
        for person in (LEAVER, STAYER):
            await store.add_review_session(f"s-{person[-6:]}", person, now, now + SESSION)
    finally:
        await store.close()
    return {name: minted.record.id for name, minted in made.items()}


async def live_sessions(root: Path, url: str, person: str) -> int:
    store = await open_store(url, root)
    try:
        return await store.live_review_sessions_of(person, utc_now())
    finally:
        await store.close()


async def usable(root: Path, url: str, person: str) -> set[str]:
    store = await open_store(url, root)
    try:
        return {t.id for t in await store.personal_tokens_of(person) if t.usable(utc_now())}
    finally:
        await store.close()


async def test_a_leavers_tokens_are_revoked_each_an_action_entry(
    root: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = backend.url
    ids = await tokens_made(root, url)

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out = await run_cli_in_thread(
        root, "tokens", "revoke", "--person", LEAVER, "--as", REVIEWER, "--password-stdin"
    )
    assert code == 0, out
    assert out.startswith(f"revoked 2 personal token(s) of {LEAVER}: ")
    assert f"ended 1 review-site session(s) of {LEAVER}: " in out
    assert await usable(root, url, LEAVER) == set()
    assert await usable(root, url, STAYER) == {ids["stayer"]}
    assert (await live_sessions(root, url, LEAVER), await live_sessions(root, url, STAYER)) == (
        0,
        1,
    )

    code, out = await run_cli_in_thread(root, "tokens", "revoke", "--person", LEAVER)
    assert code == 0, out
    assert out.splitlines() == [
        f"{LEAVER} has no usable personal token",
        f"{LEAVER} has no live review-site session",
        "nothing was changed",
    ]

    code, out = await run_cli_in_thread(root, "log", "export", "--format", "json")
    assert code == 0, out
    entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    acts = [e for e in entries if e.get("action") == "revoke_personal_token"]
    assert sorted(a["target"] for a in acts) == sorted(
        f"personal_token:{ids[n]}" for n in ("first", "second")
    )
    assert {(a["actor"], a["credential"]) for a in acts} == {(REVIEWER, f"password:{REVIEWER}")}
    [ended] = [e for e in entries if e.get("action") == "end_sessions"]
    assert (ended["actor"], ended["target"]) == (REVIEWER, f"sessions:{LEAVER}")


def test_a_wrong_credential_revokes_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("not the passphrase\n"))
    code, _, err = run_cli(
        root, "tokens", "revoke", "--person", LEAVER, "--as", REVIEWER, "--password-stdin"
    )
    assert code == 2 and "does not match; nothing was changed" in err
