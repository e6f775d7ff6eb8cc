"""Partner onboarding files: the shipped ones load; each broken kind is refused with file:line."""

from __future__ import annotations

import json
import shutil
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from gateway.cli.main import main
from gateway.crypto.seal import load_partner_key_file
from gateway.errors import ConfigErrors, GatewayError
from gateway.partners import load_partners
from gateway.partners.standing import file_keys_expire_at

GOOD = """name = "Test Bureau"
category = "credit_bureau"
jurisdiction = "LA"
agreement = "DPA-1"
base_url = "https://api.bureau.example"
retention_days = 365

[auth]
type = "oauth2_client_credentials"
token_url = "https://auth.bureau.example/token"
client_id = "kokkok"
client_secret_env = "BUREAU_SECRET"

[encryption]
public_key = "keys/partners/test-bureau.jwk.json"
alg = "RSA-OAEP-256"
enc = "A256GCM"

[operations.credit_check]
method = "POST"
path = "/v1/checks"
purposes = ["service_provision"]
legal_bases = ["consent", "contract"]
fields = { name = "keep", date_of_birth = "year", uuid = "pseudonym" }
"""


@pytest.fixture
def workdir(tmp_path: Path, project: Path) -> Path:
    (tmp_path / "partners").mkdir()
    (tmp_path / "keys" / "partners").mkdir(parents=True)
    shutil.copy(
        project / "keys" / "partners" / "lao-credit-bureau.jwk.json",
        tmp_path / "keys" / "partners" / "test-bureau.jwk.json",
    )
    return tmp_path


def write(workdir: Path, text: str) -> Path:
    path = workdir / "partners" / "test-bureau.toml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_partners_validate(project: Path, capsys):
    assert (
        main(
            [
                "--config",
                str(project / "config.toml"),
                "partners",
                "validate",
                str(project / "partners"),
            ]
        )
        == 0
    )
    assert "8 partner file(s) valid" in capsys.readouterr().out


def test_good_file_loads(workdir: Path):
    write(workdir, GOOD)
    partner = load_partners(workdir / "partners")["test-bureau"]
    assert partner.notice_operation is None  # consent-withdrawal notices: its erasure
    assert partner.operations["credit_check"].fields["date_of_birth"] == "year"
    assert partner.auth.client_secret is not None and partner.auth.client_secret.env


NOTICE_ROUTE = """
[operations.notices]
method = "POST"
path = "/v1/notices"
purposes = ["legal"]
legal_bases = ["legal_obligation"]
fields = { uuid = "pseudonym" }
"""


def test_a_dedicated_notice_operation_loads(workdir: Path):
    text = GOOD.replace(
        "retention_days = 365", 'retention_days = 365\nnotice_operation = "notices"'
    )
    write(workdir, text + NOTICE_ROUTE)
    assert load_partners(workdir / "partners")["test-bureau"].notice_operation == "notices"


BROKEN = [
    (
        "forward_trace_context not a boolean",
        GOOD.replace("retention_days = 365", 'retention_days = 365\nforward_trace_context = "yes"'),
        'forward_trace_context = "yes"',
        "'forward_trace_context' must be true or false (no quotes)",
    ),
    (
        "unknown key",
        GOOD.replace("retention_days = 365", 'retention_days = 365\ncolour = "red"'),
        'colour = "red"',
        "unknown key 'colour'",
    ),
    (
        "unknown category",
        GOOD.replace('"credit_bureau"', '"bank"'),
        'category = "bank"',
        "category 'bank' is not one of",
    ),
    (
        "unknown purpose",
        GOOD.replace('purposes = ["service_provision"]', 'purposes = ["fun"]'),
        'purposes = ["fun"]',
        "unknown purpose 'fun'",
    ),
    (
        "unknown basis",
        GOOD.replace('legal_bases = ["consent", "contract"]', 'legal_bases = ["whim"]'),
        "legal_bases",
        "unknown legal basis",
    ),
    (
        "unknown transform",
        GOOD.replace('uuid = "pseudonym"', 'uuid = "scramble"'),
        "fields = ",
        "unknown transform 'scramble'",
    ),
    (
        "missing agreement",
        GOOD.replace('agreement = "DPA-1"\n', ""),
        None,
        "missing required key 'agreement'",
    ),
    (
        "http to non-loopback",
        GOOD.replace("https://api.bureau.example", "http://api.bureau.example"),
        "base_url",
        "http:// to non-loopback host",
    ),
    (
        "inline secret",
        GOOD.replace('client_secret_env = "BUREAU_SECRET"', 'client_secret = "s3cr3t"'),
        'client_secret = "s3cr3t"',
        "secret inline",
    ),
    (
        "missing key file",
        GOOD.replace("test-bureau.jwk.json", "absent.jwk.json"),
        "public_key =",
        "not found",
    ),
    (
        "password listed",
        GOOD.replace('uuid = "pseudonym"', 'uuid = "pseudonym", password = "keep"'),
        "fields = ",
        "'password' is never disclosable",
    ),
    (
        "special without consent basis",
        GOOD.replace('legal_bases = ["consent", "contract"]', 'legal_bases = ["contract"]').replace(
            'uuid = "pseudonym"', 'uuid = "pseudonym", health_status = "keep"'
        ),
        "fields = ",
        "needs 'consent' among legal_bases",
    ),
    (
        "transform on wrong field",
        GOOD.replace('name = "keep"', 'name = "truncate_ip"'),
        "fields = ",
        "applies only to ip_address",
    ),
    (
        "placeholder not sent",
        GOOD.replace('path = "/v1/checks"', 'path = "/v1/{phone}"'),
        "path = ",
        "placeholder {phone}",
    ),
    (
        "business transfer to non-counterparty",
        GOOD.replace(
            'legal_bases = ["consent", "contract"]', 'legal_bases = ["business_transfer"]'
        ),
        "legal_bases",
        "only for partners of category 'business_transfer_counterparty'",
    ),
    (
        "notice operation not declared",
        GOOD.replace("retention_days = 365", 'retention_days = 365\nnotice_operation = "notices"'),
        'notice_operation = "notices"',
        "notice_operation 'notices' is not an operation of this file",
    ),
    (
        "notice operation that refuses notices",
        GOOD.replace(
            "retention_days = 365", 'retention_days = 365\nnotice_operation = "credit_check"'
        ),
        'notice_operation = "credit_check"',
        "must declare purpose 'legal' and legal basis 'legal_obligation'",
    ),
    (
        "bad toml",
        GOOD.replace('name = "Test Bureau"', 'name = "Test Bureau'),
        None,
        "not valid TOML",
    ),
]


BROKEN += [
    (
        "max_in_flight not a count",
        GOOD.replace("retention_days = 365", "retention_days = 365\nmax_in_flight = 0"),
        "max_in_flight = 0",
        "'max_in_flight' must be a whole number >= 1",
    ),
    (
        "rate without a unit",
        GOOD.replace("retention_days = 365", 'retention_days = 365\nrate = "50"'),
        'rate = "50"',
        "rate '50' must look like \"50/s\"",
    ),
    (
        "rate_burst without rate",
        GOOD.replace("retention_days = 365", "retention_days = 365\nrate_burst = 5"),
        "rate_burst = 5",
        "'rate_burst' is only read with 'rate'",
    ),
]


def test_partner_limits_load_and_none_is_set_by_default(workdir: Path):
    write(workdir, GOOD)
    plain = load_partners(workdir / "partners")["test-bureau"]
    assert plain.max_in_flight is None and plain.rate is None
    limited = 'max_in_flight = 8\nrate = "50/s"\nrate_burst = 100\n' + GOOD
    write(workdir, limited)
    partner = load_partners(workdir / "partners")["test-bureau"]
    assert partner.max_in_flight == 8 and partner.rate is not None
    assert (partner.rate.per_second, partner.rate.burst, str(partner.rate)) == (
        50.0,
        100,
        "50/s (burst 100)",
    )


@pytest.mark.parametrize("kind,text,needle,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_refused_with_file_and_line(workdir: Path, kind, text, needle, message, capsys):
    path = write(workdir, text)
    with pytest.raises(ConfigErrors) as exc:
        load_partners(workdir / "partners")
    errors = exc.value.errors
    assert any(message in e.message for e in errors), [str(e) for e in errors]
    hit = next(e for e in errors if message in e.message)
    assert hit.path == str(path)
    if needle is not None:
        assert hit.line == line_of(text, needle), str(hit)
    else:
        # A missing top-level key points at the file's first line (the top-level table
        # has no header line); every problem carries a line.
        assert hit.line is not None
    code = main(["partners", "validate", str(workdir / "partners")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and message in err


def test_forward_trace_context_is_off_unless_the_file_says_so(workdir: Path):
    write(workdir, GOOD)
    assert load_partners(workdir / "partners")["test-bureau"].forward_trace_context is False
    write(
        workdir,
        GOOD.replace("retention_days = 365", "retention_days = 365\nforward_trace_context = true"),
    )
    assert load_partners(workdir / "partners")["test-bureau"].forward_trace_context is True


def test_private_key_in_partner_key_file_refused(workdir: Path, project: Path):
    shutil.copy(
        project / "keys" / "sandbox" / "lao-credit-bureau.private.jwk.json",
        workdir / "keys" / "partners" / "test-bureau.jwk.json",
    )
    write(workdir, GOOD)
    with pytest.raises(ConfigErrors, match="PRIVATE key"):
        load_partners(workdir / "partners")


def test_key_type_must_fit_alg(workdir: Path):
    write(workdir, GOOD.replace('alg = "RSA-OAEP-256"', 'alg = "ECDH-ES+A256KW"'))
    with pytest.raises(ConfigErrors, match="does not fit alg"):
        load_partners(workdir / "partners")


def _small_rsa() -> dict[str, str]:
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    return {
        "kty": "RSA",
        "n": urlsafe_b64encode(numbers.n.to_bytes(128)).decode().rstrip("="),
        "e": "AQAB",
    }


# What the loader, the key cache that seals and partner standing all refuse alike (one
# reader: partners.read_partner_key_file); the loader used to accept each of these, and the
# gateway then refused the first disclosure to the partner with an internal error.
UNUSABLE_KEY_FILES = {
    "short RSA modulus": (_small_rsa, "RSA key of 1024 bits; need >= 2048"),
    "signing key only": (
        lambda: RSAKey.generate_key(2048).as_dict(private=False, use="sig"),
        "holds no encryption key",
    ),
    "symmetric key": (lambda: OctKey.generate_key(256).as_dict(private=True), "PRIVATE key"),
    "empty JWKS": (lambda: {"keys": []}, "holds no JWK"),
    "not JSON": (lambda: "{not json", "is not a JSON JWK/JWKS"),
}


@pytest.mark.parametrize("kind", sorted(UNUSABLE_KEY_FILES))
def test_one_reader_refuses_a_partner_key_file_everywhere_alike(workdir: Path, kind: str):
    make, message = UNUSABLE_KEY_FILES[kind]
    doc = make()
    key_file = workdir / "keys" / "partners" / "test-bureau.jwk.json"
    key_file.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    path = write(workdir, GOOD)
    with pytest.raises(ConfigErrors) as exc:  # the loader: at the public_key line
        load_partners(workdir / "partners")
    (hit,) = [e for e in exc.value.errors if message in e.message]
    assert (hit.path, hit.line) == (str(path), line_of(GOOD, "public_key ="))
    assert "'keys/partners/test-bureau.jwk.json'" in hit.message
    with pytest.raises(GatewayError) as sealing:  # the cache that seals
        load_partner_key_file(key_file, alg="RSA-OAEP-256")
    assert sealing.value.code == "internal_error"
    assert message in sealing.value.detail and str(key_file) in sealing.value.detail
    unchecked = load_partners(workdir / "partners", check_keys=False)["test-bureau"]
    assert file_keys_expire_at(unchecked) is None  # standing: the loader reports it


def test_a_jwks_may_carry_keys_that_do_not_fit_alg(workdir: Path):
    # Keys for another use or another alg are skipped, at load as when sealing.
    key_file = workdir / "keys" / "partners" / "test-bureau.jwk.json"
    bureau = json.loads(key_file.read_text(encoding="utf-8"))
    other = [ECKey.generate_key("P-256").as_dict(private=False), bureau]
    key_file.write_text(json.dumps({"keys": other}), encoding="utf-8")
    write(workdir, GOOD)
    partner = load_partners(workdir / "partners")["test-bureau"]
    assert partner.encryption.public_key is not None
    assert load_partner_key_file(partner.encryption.public_key, alg="RSA-OAEP-256").kid == (
        bureau.get("kid")
    )


def test_all_problems_reported_together(workdir: Path):
    write(workdir, GOOD.replace('"credit_bureau"', '"bank"').replace('"LA"', '"Laos"'))
    with pytest.raises(ConfigErrors) as exc:
        load_partners(workdir / "partners")
    assert len(exc.value.errors) == 2


# -- validate refuses what serve refuses (gateway.ops.preflight) --------------------------------


def validate_dir(workdir: Path) -> int:
    return main(["partners", "validate", str(workdir / "partners")])


def test_validate_refuses_an_unset_secret_env_var_with_its_line(workdir: Path, capsys, monkeypatch):
    monkeypatch.delenv("BUREAU_SECRET", raising=False)
    path = write(workdir, GOOD)
    assert validate_dir(workdir) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(GOOD, '[auth]')}: " in err
    assert "BUREAU_SECRET" in err and "not set" in err

    monkeypatch.setenv("BUREAU_SECRET", "s3cr3t-value")
    assert validate_dir(workdir) == 0
    captured = capsys.readouterr()
    assert "1 partner file(s) valid" in captured.out
    assert "s3cr3t-value" not in captured.out + captured.err


def test_validate_refuses_a_missing_or_exposed_secret_file(workdir: Path, capsys):
    secret = workdir / "keys" / "bureau.secret"
    text = GOOD.replace(
        'client_secret_env = "BUREAU_SECRET"', 'client_secret_file = "keys/bureau.secret"'
    )
    path = write(workdir, text)
    assert validate_dir(workdir) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(text, '[auth]')}: " in err and "cannot read the client_secret" in err

    secret.write_text("s3cr3t-value\n")
    secret.chmod(0o644)
    assert validate_dir(workdir) == 2
    err = capsys.readouterr().err
    assert f"{secret}: " in err and "chmod 600" in err and "s3cr3t-value" not in err
    secret.chmod(0o600)
    assert validate_dir(workdir) == 0


def test_validate_refuses_a_missing_certificate(workdir: Path, capsys):
    text = GOOD.replace(
        """type = "oauth2_client_credentials"
token_url = "https://auth.bureau.example/token"
client_id = "kokkok"
client_secret_env = "BUREAU_SECRET"
""",
        """type = "mtls"
cert_file = "keys/absent.crt"
cert_key_file = "keys/absent.key"
""",
    )
    path = write(workdir, text)
    assert validate_dir(workdir) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(text, '[auth]')}: " in err and "absent.crt" in err


def test_validate_with_the_config_checks_the_gateways_own_keys(project: Path, tmp_path, capsys):
    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    argv = ["--config", str(root / "config.toml"), "partners", "validate"]
    assert main(argv) == 0
    capsys.readouterr()
    (root / "keys" / "log-signing.private.pem").unlink()
    (root / "keys" / "pseudonym-master.key").chmod(0o640)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{root / 'keys' / 'log-signing.private.pem'}: not found" in err
    assert f"{root / 'keys' / 'pseudonym-master.key'}: " in err and "chmod 600" in err


# -- acknowledgement = "jws" (issue #18 item 6) -------------------------------------------

ACK_KEY = "keys/partners/test-bureau.ack.jwk.json"
WITH_ACK = GOOD.replace(
    "retention_days = 365",
    f'retention_days = 365\nacknowledgement = "jws"\nacknowledgement_key = "{ACK_KEY}"',
)


def _ack_key(workdir: Path, doc: dict) -> None:
    (workdir / ACK_KEY).write_text(json.dumps(doc), encoding="utf-8")


def test_acknowledgement_jws_loads_the_partners_signing_key(workdir: Path):
    key = OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
    _ack_key(workdir, key.as_dict(private=False))
    write(workdir, WITH_ACK)
    partner = load_partners(workdir / "partners")["test-bureau"]
    assert partner.acknowledgement == "jws"
    assert partner.acknowledgement_key == workdir / ACK_KEY
    assert [k.kid for k in partner.acknowledgement_keys] == [key.kid]
    write(workdir, GOOD)
    plain = load_partners(workdir / "partners")["test-bureau"]
    assert plain.acknowledgement == "none" and plain.acknowledgement_keys == ()


ACK_BROKEN = [
    (
        "unknown value",
        GOOD.replace("retention_days = 365", 'retention_days = 365\nacknowledgement = "signed"'),
        'acknowledgement = "signed"',
        "acknowledgement 'signed' is not one of: none, jws",
    ),
    (
        "jws without a key",
        GOOD.replace("retention_days = 365", 'retention_days = 365\nacknowledgement = "jws"'),
        'acknowledgement = "jws"',
        "needs 'acknowledgement_key'",
    ),
    (
        "a key without jws",
        GOOD.replace(
            "retention_days = 365", f'retention_days = 365\nacknowledgement_key = "{ACK_KEY}"'
        ),
        "acknowledgement_key",
        'only read with acknowledgement = "jws"',
    ),
    ("key file missing", WITH_ACK, "acknowledgement_key", "not found"),
]


@pytest.mark.parametrize("kind,text,needle,message", ACK_BROKEN, ids=[b[0] for b in ACK_BROKEN])
def test_acknowledgement_refused_with_file_and_line(workdir: Path, kind, text, needle, message):
    path = write(workdir, text)
    with pytest.raises(ConfigErrors) as exc:
        load_partners(workdir / "partners")
    hit = next(e for e in exc.value.errors if message in e.message)
    assert hit.path == str(path) and hit.line == line_of(text, needle), str(hit)


@pytest.mark.parametrize("kind", ["private", "encryption key"])
def test_acknowledgement_key_must_be_a_public_signing_key(workdir: Path, project: Path, kind):
    if kind == "private":
        _ack_key(workdir, OKPKey.generate_key("Ed25519", private=True).as_dict(private=True))
        message = "PRIVATE key"
    else:
        shutil.copy(project / "keys" / "partners" / "lao-credit-bureau.jwk.json", workdir / ACK_KEY)
        message = "no signing key"
    write(workdir, WITH_ACK)
    with pytest.raises(ConfigErrors) as exc:
        load_partners(workdir / "partners")
    hit = next(e for e in exc.value.errors if message in e.message)
    assert hit.line == line_of(WITH_ACK, "acknowledgement_key")
