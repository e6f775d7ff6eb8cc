"""What `gateway serve` refuses to start with, written once.

`create_app` runs `own_key_problems` and `refuse_exposed_secrets` when it builds
the app (the latter again on each reload) and `Outbound.preflight` when its resources
open; `gateway partners validate` runs the same functions (`check_before_start`,
with `credential_problems` running `Outbound.preflight` on a throwaway Outbound), so a
set of files that validates is a set the gateway starts with: every partner secret
set (`*_env`) or readable (`*_file`), every key and certificate file readable and
usable, no private file open to group or others, the gateway's own keys present, the
witness policy (`[log] witness_policy`) valid and usable. Each problem is a ConfigError
naming `file:line` (partner files, the witness policy) or the file (key files).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path

from gateway.config.model import Config
from gateway.crypto.at_rest import AtRestKeys
from gateway.crypto.key_files import exposed_private_files, read_secret_key
from gateway.crypto.keyring import KeyPaths
from gateway.crypto.seal import GatewayKeys
from gateway.crypto.subject_keys import key_file as subject_key_file
from gateway.errors import ConfigError, ConfigErrors
from gateway.log.service import LogSigner
from gateway.log.witness_policy import gateway_problems, load_witness_policy
from gateway.outbound.delivery import Outbound, client_session
from gateway.partners.model import Partner

__all__ = [
    "check_before_start",
    "check_deployment",
    "credential_problems",
    "exposed_secret_problems",
    "own_key_problems",
    "refuse_exposed_secrets",
    "witness_policy_problems",
]


def exposed_secret_problems(
    keys_dir: Path | None, partners: Iterable[Partner]
) -> list[ConfigError]:
    """Private keys and secrets the gateway reads that group/others may access (issue 6:
    a key readable by others can sign or unmask). Without `keys_dir`, the partners' only."""
    files: list[Path] = []
    if keys_dir is not None:
        paths = KeyPaths(keys_dir)
        files += [
            paths.gateway_signing,
            paths.gateway_encryption,
            paths.log_signing,
            paths.log_signing_next,
            *sorted(paths.log_signing_previous.glob("*.pem")),
            paths.pseudonym_master,
            paths.review_session,
            paths.subject_lookup,
            *paths.at_rest,
            subject_key_file(keys_dir),
        ]
    for partner in partners:
        auth = partner.auth
        for secret in (auth.key, auth.client_secret):
            if secret is not None and secret.file is not None:
                files.append(secret.file)
        files += [p for p in (auth.private_key_file, auth.cert_key_file) if p is not None]
    return exposed_private_files(files)


def refuse_exposed_secrets(keys_dir: Path, partners: Iterable[Partner]) -> None:
    problems = exposed_secret_problems(keys_dir, partners)
    if problems:
        raise ConfigErrors(problems)


def own_key_problems(keys_dir: Path, log_origin: str) -> list[ConfigError]:
    """The gateway's own keys `create_app` reads, each one loaded as it will be."""
    paths = KeyPaths(keys_dir)
    problems: list[ConfigError] = []
    try:
        GatewayKeys.load(keys_dir)
    except ConfigError as exc:
        problems.append(exc)
    loaders = (
        (paths.log_signing, lambda: LogSigner.load(keys_dir, log_origin)),
        (paths.pseudonym_master, lambda: read_secret_key(paths.pseudonym_master)),
        (paths.review_session, lambda: read_secret_key(paths.review_session)),
    )
    try:
        AtRestKeys.load(keys_dir)
    except FileNotFoundError as exc:
        missing = str(exc.filename or paths.subject_lookup)
        problems.append(ConfigError(missing, None, "not found: run 'gateway keys generate'"))
    except (OSError, ValueError) as exc:
        problems.append(
            ConfigError(
                str(keys_dir),
                None,
                f"an at-rest key (subject-lookup.key, at-rest-<n>.key) is unreadable or not "
                f"32 bytes ({type(exc).__name__}); check its permissions",
            )
        )
    for path, load in loaders:
        try:
            load()
        except FileNotFoundError:
            problems.append(ConfigError(str(path), None, "not found: run 'gateway keys generate'"))
        except (OSError, ValueError, TypeError) as exc:
            problems.append(
                ConfigError(
                    str(path),
                    None,
                    f"unreadable or not a usable key ({type(exc).__name__}); check its "
                    "permissions, or move it away and run 'gateway keys generate'",
                )
            )
    return problems


def witness_policy_problems(
    path: Path, keys_dir: Path | None = None, log_origin: str = ""
) -> list[ConfigError]:
    """Every bad line of the witness policy file at `path` (`file:line`), and what makes a
    valid one unusable here: a witness without a URL the gateway may call, log lines that
    do not name this gateway's log key (checked when `keys_dir` holds it)."""
    try:
        policy = load_witness_policy(path)
    except ConfigErrors as exc:
        return exc.errors
    log_vkey = None
    if keys_dir is not None:
        try:
            log_vkey = LogSigner.load(keys_dir, log_origin).verifier_key
        except (OSError, ValueError, TypeError):
            pass  # own_key_problems says what is wrong with the key
    return gateway_problems(policy, log_vkey)


def credential_problems(partners: Iterable[Partner], env: Mapping[str, str]) -> list[ConfigError]:
    """What `Outbound.preflight` refuses at start (secrets, private keys, certificates,
    CA bundles), run on a throwaway Outbound outside a running gateway."""

    async def run() -> list[ConfigError]:
        session = client_session()
        try:
            Outbound(session, env=env).preflight(partners)
        except ConfigErrors as exc:
            return exc.errors
        finally:
            await session.close()
        return []

    return asyncio.run(run())


def check_before_start(
    partners: Iterable[Partner],
    env: Mapping[str, str],
    *,
    keys_dir: Path | None = None,
    log_origin: str = "",
    witness_policy: Path | None = None,
) -> None:
    """Everything above; ConfigErrors listing every problem. Without `keys_dir` (partner
    files checked on their own) the gateway's key directory is not looked at."""
    chosen = list(partners)
    problems = credential_problems(chosen, env)
    if keys_dir is not None:
        problems += own_key_problems(keys_dir, log_origin)
    if witness_policy is not None:
        problems += witness_policy_problems(witness_policy, keys_dir, log_origin)
    problems += exposed_secret_problems(keys_dir, chosen)
    if problems:
        raise ConfigErrors(problems)


def check_deployment(config: Config, partners: Iterable[Partner], env: Mapping[str, str]) -> None:
    """`check_before_start` for what `config` names: its keys, log origin and witness
    policy (`gateway serve`, `gateway partners validate`, `gateway config validate`)."""
    check_before_start(
        partners,
        env,
        keys_dir=config.keys_dir,
        log_origin=config.log.origin,
        witness_policy=config.log.witness_policy,
    )
