"""config.toml's [oidc] table (the review site's OpenID sign-in) and [server] public_url."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.model import load_config
from gateway.errors import ConfigErrors

REPO = Path(__file__).resolve().parents[3]

OIDC = """
[oidc]
issuer = "https://login.example.com/"
client_id = "disclosure-gateway"
client_secret_env = "REVIEW_OIDC_CLIENT_SECRET"
roles_claim = "groups"
[oidc.roles]
"privacy-reviewers" = ["reviewer"]
"privacy-officers" = ["reviewer", "rights_officer"]
"""


def written(tmp_path: Path, extra: str, server: str = "") -> Path:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    if server:
        text = text.replace("[server]\n", f"[server]\n{server}\n", 1)
    path = tmp_path / "config.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def line_of(path: Path, start: str, after: str = "") -> int:
    lines = path.read_text().splitlines()
    first = lines.index(after) if after else 0
    return next(i for i, t in enumerate(lines, 1) if i > first and t.startswith(start))


def test_oidc_table_is_read(tmp_path: Path) -> None:
    path = written(tmp_path, OIDC, 'public_url = "https://gateway.example.com/"')
    config = load_config(path, environ={})
    oidc = config.oidc
    assert oidc is not None
    assert oidc.issuer == "https://login.example.com"  # one spelling: the ID token's iss
    assert oidc.client_secret_env == "REVIEW_OIDC_CLIENT_SECRET"
    assert oidc.algorithms == ("RS256", "ES256")
    assert oidc.roles_of(["privacy-officers", "other"]) == {"reviewer", "rights_officer"}
    assert oidc.roles_of("privacy-reviewers") == {"reviewer"}
    assert oidc.roles_of(None) == frozenset()
    assert config.server.public_url == "https://gateway.example.com"
    # Passwords are off beside a provider unless the break-glass says otherwise.
    assert oidc.allow_passwords is False and not config.passwords_on
    assert oidc.personal_token_max_days == 90
    assert oidc.name is None  # the button names the issuer's host
    named = written(tmp_path, OIDC.replace("[oidc]\n", '[oidc]\nname = " Company sign-on "\n'))
    assert (oidc := load_config(named, environ={}).oidc) is not None
    assert oidc.name == "Company sign-on"


def test_the_break_glass_turns_passwords_back_on(tmp_path: Path) -> None:
    extra = OIDC.replace(
        "[oidc.roles]", "allow_passwords = true\npersonal_token_max_days = 30\n[oidc.roles]"
    )
    config = load_config(written(tmp_path, extra), environ={})
    assert config.oidc is not None and config.oidc.allow_passwords and config.passwords_on
    assert config.oidc.personal_token_max_days == 30
    overridden = load_config(
        written(tmp_path, OIDC), environ={"GATEWAY_OIDC_ALLOW_PASSWORDS": "true"}
    )
    assert overridden.passwords_on


def test_without_oidc_table_passwords_only(tmp_path: Path) -> None:
    config = load_config(written(tmp_path, ""), environ={})
    assert config.oidc is None and config.passwords_on


@pytest.mark.parametrize(
    ("change", "at", "message"),
    [
        (('issuer = "https://login', 'issuer = "http://login'), "issuer", "https:// URL"),
        (('roles_claim = "groups"', 'roles_claim = ""'), "roles_claim", "the person's groups"),
        (('["reviewer"]', '["admin"]'), '"privacy-reviewers"', "list of gateway roles"),
        (("client_secret_env", "client_secret"), "client_secret", "would put a secret inline"),
        (
            ('roles_claim = "groups"', 'roles_claim = "groups"\nalgorithms = ["HS256"]'),
            "algorithms",
            "never none or HS*",
        ),
        (
            ('roles_claim = "groups"', 'roles_claim = "groups"\nname = ""'),
            "name",
            "oidc.name must be one line of 1 to 60 characters",
        ),
        (
            ('roles_claim = "groups"', 'roles_claim = "groups"\nallow_passwords = "yes"'),
            "allow_passwords",
            "oidc.allow_passwords must be true or false",
        ),
        (
            ('roles_claim = "groups"', 'roles_claim = "groups"\npersonal_token_max_days = 0'),
            "personal_token_max_days",
            "from 1 to 365",
        ),
    ],
)
def test_oidc_mistakes_are_refused_at_their_line(
    tmp_path: Path, change: tuple[str, str], at: str, message: str
) -> None:
    path = written(tmp_path, OIDC.replace(*change, 1))
    with pytest.raises(ConfigErrors) as exc:
        load_config(path, environ={})
    [error] = exc.value.errors
    assert message in error.message
    assert error.line == line_of(path, at, after="[oidc]")


def test_public_url_must_be_an_https_origin(tmp_path: Path) -> None:
    path = written(tmp_path, "", 'public_url = "http://gateway.example.com/review"')
    with pytest.raises(ConfigErrors) as exc:
        load_config(path, environ={})
    [error] = exc.value.errors
    assert "server.public_url must be the https:// origin" in error.message
    assert error.line == line_of(path, "public_url")
