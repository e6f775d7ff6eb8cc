"""The keys and certificates `gateway keys generate` writes for the loopback sandbox partners.

For each partner whose base_url is on loopback, so a fresh clone runs the demo and the
tests with no real partner (under keys/sandbox/ unless the partner file names a path):
its encryption private key (`<id>.private.jwk.json`, public half at the partner file's
`[encryption] public_key`), with `acknowledgement = "jws"` its Ed25519 signing key
(`<id>.ack.private.jwk.json`, public half at `acknowledgement_key`), secrets named by
`[auth] *_file`, a private_key_jwt client key pair (private at `private_key_file`, PEM
when the name ends in `.pem`, JWK otherwise; public JWK at `<id>.client.jwk.json`), and
for mTLS partners a development CA (`ca.pem`, `ca.key.pem`), the client certificate and
key at `cert_file`/`cert_key_file` and a server certificate for 127.0.0.1/::1/localhost
(`<id>.server.crt.pem`, `<id>.server.key.pem`).

Only what is missing is created. A half pair that cannot be completed (a public key
whose private half is gone, half a CA) is left alone: delete it to get a fresh pair.
Partner files are read with plain tomllib, not the validating loader, because that
loader refuses a partner whose key file does not exist yet.
"""

from __future__ import annotations

import ipaddress
import secrets
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.crypto.key_files import (
    Jwk,
    NewFiles,
    import_private_key_file,
    json_bytes,
    jwk_bytes,
    pem_private,
)
from gateway.crypto.keyring import RSA_BITS, KeyPaths, public_jwk
from gateway.net import is_loopback_host
from gateway.partners.model import AUTH_KEYS

# [auth] *_file keys that name a secret token (the others hold keys/certificates).
SECRET_FILE_KEYS: Final = frozenset(k for k in AUTH_KEYS if k.endswith("_file")) - {
    "private_key_file",
    "cert_file",
    "cert_key_file",
}
CA_LIFETIME: Final = timedelta(days=5 * 365)
LEAF_LIFETIME: Final = timedelta(days=2 * 365)
MTLS_CLIENT_NAME: Final = "disclosure-gateway"


def new_partner_key(alg: str) -> Jwk:
    """A sandbox partner's encryption key pair for the JWE key-management `alg`."""
    if alg == "RSA-OAEP-256":
        return RSAKey.generate_key(RSA_BITS, private=True)
    if alg.startswith("ECDH-ES"):
        return OKPKey.generate_key("X25519", private=True)
    raise ValueError(f"no sandbox key type for alg {alg!r}")


class SandboxPartnerKeys:
    """Everything a loopback partner needs to play its part in the demo and the tests."""

    def __init__(
        self, file: Path, base: Path, paths: KeyPaths, now: datetime, out: NewFiles
    ) -> None:
        self.file = file
        self.id = file.stem
        self.base = base
        self.paths = paths
        self.now = now
        self.out = out

    def resolve(self, value: object) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else self.base / path

    def generate(self) -> None:
        try:
            data = tomllib.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return  # `gateway partners validate` reports it with its line
        host = urlsplit(str(data.get("base_url", ""))).hostname or ""
        if not is_loopback_host(host):
            return  # a real partner: its keys come from the partner, never from here
        encryption, auth = data.get("encryption"), data.get("auth")
        if isinstance(encryption, dict):
            self._encryption_pair(encryption)
        if isinstance(auth, dict):
            self._auth_material(auth)
        if data.get("acknowledgement") == "jws":
            self._acknowledgement_pair(self.resolve(data.get("acknowledgement_key")))

    def _encryption_pair(self, encryption: Mapping[str, Any]) -> None:
        public_path = self.resolve(encryption.get("public_key"))
        if public_path is None:
            return  # public_key_url: the sandbox serves its JWKS itself
        private_path = self.paths.sandbox_partner(self.id)
        if private_path.exists():
            if not public_path.exists():
                key = import_private_key_file(private_path)
                self.out.ensure(
                    public_path, lambda: json_bytes(public_jwk(key.as_dict())), private=False
                )
            return
        if public_path.exists():
            return  # its private half is gone and cannot be rebuilt; see module docstring
        try:
            key = new_partner_key(str(encryption.get("alg", "")))
        except ValueError:
            return  # unknown alg: the validating loader names it
        self.out.ensure(private_path, lambda: jwk_bytes(key, use="enc"))
        self.out.ensure(
            public_path,
            lambda: json_bytes(public_jwk(key.as_dict(private=False, use="enc"))),
            private=False,
        )

    def _acknowledgement_pair(self, public_path: Path | None) -> None:
        """An Ed25519 signing pair for the partner's acknowledgements (gateway.crypto.
        acknowledgement): private under keys/sandbox/, public at `acknowledgement_key`."""
        if public_path is None:
            return  # the validating loader names the missing key
        private_path = self.paths.sandbox_acknowledgement(self.id)
        if private_path.exists():
            if not public_path.exists():
                key = import_private_key_file(private_path)
                public = public_jwk(key.as_dict(use="sig", alg="Ed25519"))
                self.out.ensure(public_path, lambda: json_bytes(public), private=False)
            return
        if public_path.exists():
            return  # its private half is gone and cannot be rebuilt; see module docstring
        key = OKPKey.generate_key("Ed25519", private=True, auto_kid=True)
        self.out.ensure(private_path, lambda: jwk_bytes(key, use="sig", alg="Ed25519"))
        public = public_jwk(key.as_dict(use="sig", alg="Ed25519"))
        self.out.ensure(public_path, lambda: json_bytes(public), private=False)

    def _auth_material(self, auth: Mapping[str, Any]) -> None:
        for name in sorted(SECRET_FILE_KEYS & auth.keys()):
            path = self.resolve(auth[name])
            if path is not None:
                self.out.ensure(path, lambda: secrets.token_urlsafe(32).encode("ascii") + b"\n")
        if auth.get("token_endpoint_auth_method") == "private_key_jwt":
            self._client_key(self.resolve(auth.get("private_key_file")))
        if auth.get("type") == "mtls":
            cert, key = self.resolve(auth.get("cert_file")), self.resolve(auth.get("cert_key_file"))
            if cert is not None and key is not None:
                self._mtls(cert, key)

    def _client_key(self, private_path: Path | None) -> None:
        if private_path is None:
            return
        public_path = self.paths.sandbox_client_jwk(self.id)
        if private_path.exists():
            if not public_path.exists():
                key = import_private_key_file(private_path)
                public = public_jwk(key.as_dict(use="sig", alg="ES256"))
                self.out.ensure(public_path, lambda: json_bytes(public), private=False)
            return
        if public_path.exists():
            return
        key = ECKey.generate_key("P-256", private=True, auto_kid=True)
        if private_path.suffix == ".pem":
            self.out.ensure(private_path, lambda: key.as_pem(private=True))
        else:
            self.out.ensure(private_path, lambda: jwk_bytes(key, use="sig", alg="ES256"))
        public = public_jwk(key.as_dict(use="sig", alg="ES256"))
        self.out.ensure(public_path, lambda: json_bytes(public), private=False)

    def _mtls(self, client_cert: Path, client_key: Path) -> None:
        ca = self._ca()
        if ca is None:
            return
        self._leaf(client_cert, client_key, ca, server=False)
        self._leaf(
            self.paths.sandbox_server_cert(self.id),
            self.paths.sandbox_server_key(self.id),
            ca,
            server=True,
        )

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        cert_path, key_path = self.paths.sandbox_ca_cert, self.paths.sandbox_ca_key
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                return None
            return cert, key
        if cert_path.exists() or key_path.exists():
            return None  # half a CA: leave it; see module docstring
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Disclosure Gateway sandbox CA")])
        cert = (
            _builder(name, name, key.public_key(), self.now, CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self.out.ensure(key_path, lambda: pem_private(key))
        self.out.ensure(
            cert_path, lambda: cert.public_bytes(serialization.Encoding.PEM), private=False
        )
        return cert, key

    def _leaf(
        self,
        cert_path: Path,
        key_path: Path,
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        *,
        server: bool,
    ) -> None:
        if cert_path.exists() or key_path.exists():
            return  # present, or half a pair that only a person should remove
        ca_cert, ca_key = ca
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = f"{self.id} sandbox" if server else MTLS_CLIENT_NAME
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(subject, ca_cert.subject, key.public_key(), self.now, LEAF_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        self.out.ensure(key_path, lambda: pem_private(key))
        self.out.ensure(
            cert_path, lambda: cert.public_bytes(serialization.Encoding.PEM), private=False
        )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    # Backdated an hour so a machine whose clock lags a little still accepts it.
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
