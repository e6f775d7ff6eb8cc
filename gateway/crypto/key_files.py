"""Reading and writing one key file: the one JSON key reader and the one way a key file is made.

Every JSON JWK or JWKS under keys/ is read by `read_json_key`, so a missing or broken file
is the same kind of ConfigError whichever key it holds (the message names the fix). A new
key file is created by `create_key_file`, which is `files.write_atomically` with
`exclusive=True`: the file appears whole or not at all, a private one is 0600 from its
first byte, and a file already there is never overwritten.
"""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.errors import ConfigError
from gateway.files import PRIVATE, write_atomically
from gateway.partners.keyfile import KEY_CLASSES

# Public halves and certificates: readable by the sandboxes and by whoever inspects them.
PUBLIC: Final = 0o644

Jwk = ECKey | OKPKey | RSAKey


def read_json_key(path: Path, *, missing: str, what: str = "JWK") -> dict[str, Any]:
    """The JSON object in a key file; ConfigError naming `path` when it is absent or not one.

    `missing` is the message for an absent file (it says how to create it); `what` names
    the expected content ("JWK", "JWKS") in the other messages.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(str(path), None, missing) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), None, f"not a JSON {what} ({type(exc).__name__})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(str(path), None, f"not a JSON {what} object")
    return doc


def read_secret_key(path: Path) -> bytes:
    """A 32-byte symmetric key stored base64 on one line."""
    raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    if len(raw) < 32:
        raise ValueError(f"{path}: key shorter than 32 bytes")
    return raw


def import_private_key_file(path: Path) -> Jwk:
    """A private key file as a joserfc key with its kid: PEM (EC) when named `*.pem`, else a JWK."""
    if path.suffix == ".pem":
        pem = ECKey.import_key(path.read_bytes())
        pem.ensure_kid()
        return pem
    doc = read_json_key(path, missing="key file not found: run 'gateway keys generate'")
    kty = doc.get("kty")
    cls = KEY_CLASSES.get(str(kty))
    if cls is None:
        raise ConfigError(str(path), None, f"unsupported key type {kty!r}")
    key: Jwk = cls.import_key(doc)
    key.ensure_kid()
    return key


def create_key_file(path: Path, data: bytes, *, private: bool = True) -> None:
    """Create `path` holding `data` (0600, or 0644 when not `private`).

    Raises FileExistsError when `path` exists: a key file is made once and never replaced.
    """
    if not write_atomically(path, data, mode=PRIVATE if private else PUBLIC, exclusive=True):
        raise FileExistsError(path)


class NewFiles:
    """Collects the paths written; `ensure` creates a file only when it is missing."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def ensure(self, path: Path, make: Callable[[], bytes], *, private: bool = True) -> bool:
        """Create `path` from `make()` unless it exists; True when it was created."""
        if path.exists():
            return False
        create_key_file(path, make(), private=private)
        self.paths.append(path)
        return True


def json_bytes(doc: Mapping[str, Any]) -> bytes:
    """A JSON key file's bytes: indented, one trailing newline."""
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def jwk_bytes(key: Jwk, **params: Any) -> bytes:
    """A private JWK file's bytes, with its kid (RFC 7638 thumbprint) and `params` members."""
    key.ensure_kid()
    return json_bytes(key.as_dict(private=True, **params))


def pem_private(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """An unencrypted PKCS#8 PEM private key file's bytes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def exposed_private_files(paths: Iterable[Path]) -> list[ConfigError]:
    """A problem for each existing private file that group or others may read or write.

    The gateway refuses to start with such a file: a key readable by another account on
    the machine can sign disclosures, decrypt partner answers or unmask the log.
    """
    problems: list[ConfigError] = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            problems.append(
                ConfigError(
                    str(path),
                    None,
                    f"private key or secret is accessible to group/others (mode "
                    f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
                )
            )
    return problems
