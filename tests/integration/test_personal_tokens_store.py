"""Personal API tokens in the store (schema 13), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.store.base import Store
from gateway.store.records import PersonalToken

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DARA = "http://localhost:1#dara"


def token(n: int, person: str = DARA) -> PersonalToken:
    return PersonalToken(
        id=f"pt-{n}",
        person=person,
        roles=frozenset({"reviewer", "rights_officer"}),
        token_hash=f"{n:064x}",
        created_at=NOW + timedelta(minutes=n),
        expires_at=NOW + timedelta(days=30),
    )


async def test_tokens_are_found_by_hash_listed_and_revoked_once(store: Store) -> None:
    for n in (1, 2):
        await store.add_personal_token(token(n))
    await store.add_personal_token(token(3, person="http://localhost:1#other"))

    found = await store.personal_token_by_hash(f"{2:064x}")
    assert found == token(2)
    assert await store.personal_token_by_hash("0" * 63 + "9") is None
    assert [t.id for t in await store.personal_tokens_of(DARA)] == ["pt-2", "pt-1"]

    assert not await store.revoke_personal_token("pt-3", DARA, NOW)  # not Dara's
    assert await store.revoke_personal_token("pt-1", DARA, NOW + timedelta(hours=1))
    assert not await store.revoke_personal_token("pt-1", DARA, NOW + timedelta(hours=2))
    revoked = await store.personal_token_by_hash(f"{1:064x}")
    assert revoked is not None and revoked.revoked_at == NOW + timedelta(hours=1)
    assert not revoked.usable(NOW + timedelta(hours=1))
    assert found.usable(NOW) and not found.usable(NOW + timedelta(days=30))
