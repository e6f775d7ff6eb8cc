"""`partners tighten`'s text edit (gateway.partners.tighten): only the named fields go,
comments and layout stay, and a file it cannot edit safely is refused."""

from __future__ import annotations

import tomllib

import pytest

from gateway.errors import ConfigError
from gateway.partners.tighten import remove_fields, tighten_patch

INLINE = """# a partner
name = "X"

[operations.feed]   # the feed
purposes = ["marketing"]
fields = { email = "pseudonym", cookie = "keep", "app_id" = "keep" }  # reviewed 2026

[operations.other]
fields = { email = "keep" }
"""

TABLE = """name = "X"

[operations.feed]
purposes = ["marketing"]

[operations.feed.fields]
email = "pseudonym"   # hashed
cookie = "keep"
app_id = "keep"
"""


def fields(text: str) -> dict[str, dict[str, str]]:
    return {n: op["fields"] for n, op in tomllib.loads(text)["operations"].items()}


def test_inline_table_loses_only_the_named_fields() -> None:
    after = remove_fields(INLINE, {"feed": ("cookie", "app_id")}, "partners/x.toml")
    assert fields(after) == {"feed": {"email": "pseudonym"}, "other": {"email": "keep"}}
    assert "# reviewed 2026" in after and "# the feed" in after


def test_fields_table_loses_its_lines() -> None:
    after = remove_fields(TABLE, {"feed": ("email",)}, "partners/x.toml")
    assert fields(after) == {"feed": {"cookie": "keep", "app_id": "keep"}}
    assert "hashed" not in after


def test_the_patch_is_a_unified_diff() -> None:
    patch = tighten_patch(INLINE, {"feed": ("cookie",)}, "partners/x.toml")
    assert patch.startswith("--- a/partners/x.toml\n+++ b/partners/x.toml\n")
    assert '-fields = { email = "pseudonym", cookie = "keep"' in patch
    assert '+fields = { email = "pseudonym", "app_id" = "keep" }  # reviewed 2026' in patch
    assert tighten_patch(INLINE, {}, "partners/x.toml") == ""


def test_a_field_it_cannot_find_is_refused() -> None:
    multiline = INLINE.replace(
        'fields = { email = "pseudonym", cookie = "keep", "app_id" = "keep" }',
        'fields.email = "pseudonym"\nfields.cookie = "keep"',
    )
    with pytest.raises(ConfigError, match=r"feed\.cookie"):
        remove_fields(multiline, {"feed": ("cookie",)}, "partners/x.toml")
