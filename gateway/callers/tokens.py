"""Who is calling: verify internal callers' bearer tokens (CONTRACT §3).

Internal services send `Authorization: Bearer <JWT>`, an RFC 9068 access token
signed by a key in the configured JWKS (a file, or the identity provider's
JWKS URL). `CallerAuthenticator.authenticate` checks it on every request and
returns the configured `Caller`; anything wrong is a GatewayError
`unauthenticated` (or `forbidden` for a valid token whose subject is not a
configured caller) whose detail says what was expected and what was found,
without ever quoting the token.

Hardening, in the order a token meets it: a size limit; a closed list of
asymmetric algorithms (never `none`, never HS*: an HMAC "signed" with a
public key's bytes is the classic confusion attack); the key is chosen only
by `kid` from our JWKS (header `jwk`/`jku`/`x5u` are ignored, so a token can
never bring its own key); the key must fit the algorithm (type, curve, JWK
`alg`/`use`); then the claims.

Verification runs on every request, so keys are parsed once, and a token that
verified is remembered (bounded LRU keyed by the exact token string) until
its `exp`: a repeat costs one dict lookup and one clock read.

The development issuer of caller tokens (`gateway token CALLER_ID`) lives with the key
it signs with, in `keys.issue_dev_token`: the gateway itself only ever verifies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard

import aiohttp
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import Key, import_key
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from gateway.config.model import AuthConfig, Caller
from gateway.errors import ConfigError, ForbiddenError, GatewayError, UnauthenticatedError

log = logging.getLogger(__name__)

# Asymmetric signature algorithms only. Whatever config.toml says, nothing
# outside this set is ever accepted: `none` and HS* would let anyone holding
# the (public) JWKS forge a token.
SIGNATURE_ALGORITHMS: Final = frozenset(
    {
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
    }
)
# RFC 9068 §4: a resource server rejects any other `typ`, so an ID token or
# some other JWT from the same issuer cannot be replayed as an access token.
ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})

MAX_TOKEN_BYTES: Final = 8192
MAX_JWKS_BYTES: Final = 256 * 1024
JWKS_FETCH_TIMEOUT_S: Final = 5.0
MAX_NUMERIC_DATE: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_PRIVATE_JWK_PARAMS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _unauthenticated(detail: str) -> GatewayError:
    return UnauthenticatedError(detail)


def _short(value: object, limit: int = 80) -> str:
    """A claim or header value for a detail, cut so a hostile token cannot flood logs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _is_time(value: object) -> TypeGuard[float]:
    # A closed range, not just "a number": json.loads accepts Infinity and NaN (an `exp` of
    # Infinity must not mean "never expires"), and huge values would crash float() or datetime.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= MAX_NUMERIC_DATE
    )


def require_role(caller: Caller, role: str) -> None:
    """Raise `forbidden` unless the caller has `role`."""
    if role not in caller.roles:
        has = ", ".join(sorted(caller.roles)) or "none"
        raise ForbiddenError(
            f"caller {caller.id!r} lacks role {role!r} (has: {has}); "
            f"add it to the caller's roles in config.toml",
        )


class JwksError(ValueError):
    """A JWKS document that cannot be used as the set of caller keys."""


def parse_jwks(doc: object) -> tuple[dict[str, Key], list[str]]:
    """The signature keys of a JWKS by kid, and what was skipped (one line each).

    Encryption and symmetric keys are skipped silently: a JWKS may carry them
    and they can never verify a caller token. Private key material anywhere
    in the set is fatal: it means a secret was published.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('not a JWKS: expected a JSON object {"keys": [...]}')
    keys: dict[str, Key] = {}
    problems: list[str] = []
    duplicates: set[str] = set()
    for index, entry in enumerate(doc["keys"]):
        if not isinstance(entry, dict):
            problems.append(f"keys[{index}] is not a JSON object")
            continue
        leaked = sorted(_PRIVATE_JWK_PARAMS & entry.keys())
        if leaked:
            raise JwksError(
                f"keys[{index}] holds private key material ({', '.join(leaked)}); "
                "a JWKS of caller keys must hold public keys only"
            )
        if entry.get("kty") not in ("EC", "OKP", "RSA") or entry.get("use", "sig") != "sig":
            continue
        try:
            with warnings.catch_warnings():
                # joserfc warns about weak keys (RSA under 2048 bits); for a trust anchor that
                # is a reason to refuse the key, not a warning to scroll past.
                warnings.simplefilter("error", SecurityWarning)
                key = import_key(entry)
        except SecurityWarning as exc:
            problems.append(f"keys[{index}] is refused as weak: {exc}")
            continue
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"keys[{index}] is not a usable public key: {exc}")
            continue
        kid = key.kid or key.thumbprint()
        if kid in keys or kid in duplicates:
            # Two keys under one kid: a token naming it is ambiguous, so neither is used.
            duplicates.add(kid)
            keys.pop(kid, None)
            problems.append(f"keys[{index}]: kid {_short(kid)} appears more than once")
            continue
        keys[kid] = key
    return keys, problems


@dataclass(frozen=True, slots=True)
class _Verified:
    caller: Caller
    expires_at: float  # exp + leeway: the same bound the full check applies


class CallerAuthenticator:
    """Verifies caller bearer tokens against the configured JWKS and callers.

    Build one per process. With `auth.jwks` the file is parsed here (a broken
    file is a ConfigError) and `reload()` re-reads it. With `auth.jwks_url`
    keys are fetched with `session` on first need, refetched when older than
    `jwks_max_age_s` or when a token names an unknown kid, but never more
    often than every `refetch_interval_s`, so a flood of random kids costs
    the identity provider one request a minute. If a refetch fails, the keys
    already known stay in use.
    """

    def __init__(
        self,
        auth: AuthConfig,
        callers: Mapping[str, Caller],
        session: aiohttp.ClientSession | None,
        clock: Callable[[], float] = time.time,
        leeway_s: int = 30,
        *,
        refetch_interval_s: float = 60.0,
        jwks_max_age_s: float = 600.0,
        cache_size: int = 10_000,
    ) -> None:
        if (auth.jwks is None) == (auth.jwks_url is None):
            raise ValueError("AuthConfig needs exactly one of jwks (a file) or jwks_url")
        if auth.jwks_url is not None and session is None:
            raise ValueError("a ClientSession is needed to fetch auth.jwks_url")
        self._auth = auth
        self._callers = callers
        self._session = session
        self._clock = clock
        self._leeway = float(leeway_s)
        self._refetch_interval = refetch_interval_s
        self._max_age = jwks_max_age_s
        self._cache_size = cache_size
        self._algorithms = _algorithm_models(auth.algorithms)
        self._audience_text = _short(auth.audience)
        self._keys: dict[str, Key] = {}
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._fetch_lock = asyncio.Lock()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._fetch_error: str | None = None
        if auth.jwks is not None:
            self.reload()

    # --- keys -------------------------------------------------------------

    @property
    def key_ids(self) -> frozenset[str]:
        """The kids of the keys currently trusted (for /readyz and diagnostics)."""
        return frozenset(self._keys)

    @property
    def cached_verifications(self) -> int:
        """How many verified tokens are remembered (bounded by `cache_size`)."""
        return len(self._verified)

    def reload(self) -> None:
        """Re-read the `auth.jwks` file; on any problem keep the old keys and raise ConfigError."""
        path = self._auth.jwks
        if path is None:
            raise ValueError("reload() re-reads auth.jwks; with auth.jwks_url use refresh()")
        try:
            doc = json.loads(path.read_bytes())
        except OSError as exc:
            raise ConfigError(
                str(path), None, f"cannot read the caller JWKS ({exc.strerror})"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(str(path), exc.lineno, f"not JSON: {exc.msg}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(str(path), None, "not UTF-8 JSON") from exc
        try:
            keys, problems = parse_jwks(doc)
        except JwksError as exc:
            raise ConfigError(str(path), None, str(exc)) from exc
        if problems:
            raise ConfigError(str(path), None, "; ".join(problems))
        if not keys:
            raise ConfigError(
                str(path),
                None,
                "no signature keys (EC, OKP or RSA with use 'sig'); "
                "run `gateway keys generate` for a development issuer",
            )
        self._install(keys)

    async def refresh(self) -> None:
        """Fetch `auth.jwks_url` now (e.g. at startup); raise `unauthenticated` if it fails."""
        if self._auth.jwks_url is None:
            raise ValueError("refresh() fetches auth.jwks_url; with auth.jwks use reload()")
        await self._refetch(rate_limited=False)
        if self._fetch_error is not None:
            raise _unauthenticated(self._keys_unavailable())

    def _install(self, keys: dict[str, Key]) -> None:
        self._keys = keys
        # A remembered verification may rest on a key that is gone now.
        self._verified.clear()

    async def _refetch(self, *, rate_limited: bool = True) -> None:
        url = self._auth.jwks_url
        assert url is not None and self._session is not None
        async with self._fetch_lock:
            now = self._clock()
            if rate_limited and not self._may_refetch(now):
                return  # fetched moments ago, possibly while this request waited for the lock
            self._attempted_at = now
            try:
                doc = await _fetch_json(self._session, url)
                keys, problems = parse_jwks(doc)
                if not keys:
                    raise JwksError("no signature keys (EC, OKP or RSA with use 'sig')")
            except JwksError as exc:
                self._fetch_error = f"JWKS from {url} unusable: {exc}"
                log.warning("caller JWKS refresh failed: %s", self._fetch_error)
                return
            for problem in problems:
                log.warning("caller JWKS from %s: skipped %s", url, problem)
            self._fetch_error = None
            self._fetched_at = now
            self._install(keys)

    def _may_refetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._refetch_interval

    def _keys_unavailable(self) -> str:
        reason = self._fetch_error or "not fetched yet"
        return (
            f"caller keys are unavailable ({reason}); the JWKS is retried at most every "
            f"{self._refetch_interval:g} s"
        )

    # --- tokens -----------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Caller:
        """The configured caller that the `Authorization` header value proves to be."""
        token = _bearer_token(authorization)
        now = self._clock()
        hit = self._verified.get(token)
        if hit is not None:
            if now < hit.expires_at:
                self._verified.move_to_end(token)
                return hit.caller
            del self._verified[token]  # expired: the full check below says so precisely
        obj, alg, kid = self._parse(token)
        if self._auth.jwks_url is not None:
            key = self._keys.get(kid)
            if key is None:
                await self._refetch()
                now = self._clock()  # the fetch may have taken seconds
            elif (
                self._fetched_at is not None
                and now - self._fetched_at >= self._max_age
                and self._may_refetch(now)
                and not self._fetch_lock.locked()  # stale keys serve while one request refreshes
            ):
                await self._refetch()  # periodic, so a key removed at the IdP stops working
                now = self._clock()
        key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise _unauthenticated(self._keys_unavailable())
            known = sorted(self._keys)
            more = f" and {len(known) - 5} more" if len(known) > 5 else ""
            raise _unauthenticated(
                f"token key id {_short(kid)} is not in the caller JWKS "
                f"(known: {', '.join(known[:5])}{more}); sign with a key the JWKS publishes"
            )
        self._verify_signature(obj, alg, kid, key)
        caller, expires_at = self._check_claims(obj.payload, now)
        self._verified[token] = _Verified(caller, expires_at)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return caller

    def _parse(self, token: str) -> tuple[jws.CompactSignature, str, str]:
        try:
            obj = jws.extract_compact(token.encode("ascii"))
            header = obj.protected
            if not isinstance(header, dict):
                raise TypeError("the JWS header is not a JSON object")
        # TypeError: joserfc indexes the decoded header before anyone checks it is an object.
        except (JoseError, ValueError, TypeError, RecursionError) as exc:
            raise _unauthenticated(
                "bearer token is not a compact JWS (three base64url parts joined by '.')"
            ) from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _unauthenticated(
                f"token alg {_short(alg)} is not accepted; expected one of "
                f"{', '.join(self._algorithms)} (auth.algorithms)"
            )
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise _unauthenticated(
                f"token typ {_short(typ)} is not an access token; expected 'at+jwt' (RFC 9068)"
            )
        if "crit" in header or "b64" in header:
            raise _unauthenticated(
                "token header uses 'crit'/'b64' extensions; caller tokens must not"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthenticated(
                "token header has no 'kid'; expected the id of a key in the caller JWKS"
            )
        return obj, alg, kid

    def _verify_signature(self, obj: jws.CompactSignature, alg: str, kid: str, key: Key) -> None:
        model = self._algorithms[alg]
        try:
            model.check_key(key)
        except JoseError as exc:
            raise _unauthenticated(
                f"token alg {alg} does not fit key {_short(kid)} ({exc.description})"
            ) from exc
        segments = obj.segments
        try:
            signature = urlsafe_b64decode(segments["signature"])
            valid = model.verify(segments["header"] + b"." + segments["payload"], signature, key)
        except (JoseError, ValueError) as exc:
            raise _unauthenticated(f"token signature is malformed for {alg}") from exc
        if not valid:
            raise _unauthenticated(
                f"token signature does not verify with key {_short(kid)} ({alg}); "
                "the token was altered or signed by another key"
            )

    def _check_claims(self, payload: bytes, now: float) -> tuple[Caller, float]:
        auth, leeway = self._auth, self._leeway
        try:
            claims: Any = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise _unauthenticated("token payload is not a JSON object") from exc
        if not isinstance(claims, dict):
            raise _unauthenticated("token payload is not a JSON object")
        iss = claims.get("iss")
        if iss != auth.issuer:
            raise _unauthenticated(
                f"token iss {_short(iss)} is not the expected issuer {auth.issuer!r} (auth.issuer)"
            )
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or auth.audience not in audiences:
            raise _unauthenticated(
                f"token aud {_short(aud)} does not include {self._audience_text} (auth.audience)"
            )
        exp = claims.get("exp")
        if not _is_time(exp):
            raise _unauthenticated("token has no numeric 'exp'; caller tokens must expire")
        if now >= exp + leeway:
            raise _unauthenticated(
                f"token expired at {_utc(exp)} (now {_utc(now)}, leeway {leeway:g} s); "
                "get a fresh token"
            )
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not _is_time(value):
                raise _unauthenticated(f"token {name} {_short(value)} is not a NumericDate")
            if value > now + leeway:
                raise _unauthenticated(
                    f"token {name} {_utc(value)} is in the future (now {_utc(now)}, "
                    f"leeway {leeway:g} s); check the issuer's clock"
                )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _unauthenticated("token has no 'sub'; expected the caller id")
        caller = self._callers.get(sub)
        if caller is None:
            # The subject is not echoed: an unknown sub may be a person's id from the same IdP.
            raise ForbiddenError(
                "token is valid but its subject is not a configured caller; "
                "add it as a [[callers]] id in config.toml",
            )
        return caller, float(exp) + leeway


def _algorithm_models(names: Collection[str]) -> dict[str, JWSAlgModel]:
    """The joserfc model of each configured algorithm, refusing anything not asymmetric."""
    unsafe = sorted(set(names) - SIGNATURE_ALGORITHMS)
    if unsafe or not names:
        raise ValueError(
            f"auth.algorithms {sorted(names)} must be a non-empty subset of "
            f"{sorted(SIGNATURE_ALGORITHMS)}; refused: {unsafe}"
        )
    registry = JWSRegistry(algorithms=list(names))
    models: dict[str, JWSAlgModel] = {}
    with warnings.catch_warnings():
        # joserfc flags the name "EdDSA" as deprecated by RFC 9864 (it prefers the
        # fully-specified "Ed25519"). The operator listed it explicitly and many IdPs
        # still emit it; the key's curve is checked by the model either way.
        warnings.simplefilter("ignore", SecurityWarning)
        for name in names:
            models[name] = registry.get_alg(name)
    return models


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise _unauthenticated(
            "missing Authorization header; expected 'Authorization: Bearer <JWT>' "
            "(a development token: `gateway token CALLER_ID`)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    # The scheme is not echoed: a header without a scheme would put the secret there.
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated("Authorization header is not 'Bearer <JWT>'")
    if len(token) > MAX_TOKEN_BYTES:
        raise _unauthenticated(
            f"bearer token is {len(token)} bytes; at most {MAX_TOKEN_BYTES} are accepted"
        )
    if not token.isascii() or " " in token:
        raise _unauthenticated(
            "bearer token is not a compact JWS (three base64url parts joined by '.')"
        )
    return token


async def _fetch_json(session: aiohttp.ClientSession, url: str) -> object:
    """GET a JWKS, bounded in time and size; every failure becomes JwksError."""
    try:
        async with session.get(
            url,
            headers={"Accept": "application/jwk-set+json, application/json"},
            timeout=aiohttp.ClientTimeout(total=JWKS_FETCH_TIMEOUT_S),
        ) as response:
            if response.status != 200:
                raise JwksError(f"HTTP {response.status}, expected 200")
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise JwksError(f"request failed: {type(exc).__name__} {exc}".rstrip()) from exc
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise JwksError("response is not JSON") from exc


def token_key_id(token: str) -> str | None:
    """The `kid` in the header of a token this module already verified: which key proved a
    person, as an `action` entry of the log records it (never the token). None when the
    header cannot be read."""
    header = token.partition(".")[0]
    try:
        kid = json.loads(urlsafe_b64decode(header.encode("ascii")))
    except (ValueError, TypeError):
        return None
    found = kid.get("kid") if isinstance(kid, dict) else None
    return found[:120] if isinstance(found, str) and found else None
