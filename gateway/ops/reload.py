"""Reloading partner files and config without a restart (issue 9), and what a running
`gateway serve` needs around it: its pid file, SIGHUP, and the scheduled refresh of the
partners' fetched keys.

`Reloader.reload()` reads config.toml and the partner files again; anything invalid is
refused whole and the running set stays in force, with the reason logged. A valid set
replaces the live tables (`gateway.partners.model.LiveTable`) in one assignment, so a
request in flight finishes with the set it began with. `reload_on_sighup` wires it to
SIGHUP; `gateway partners reload` finds the process through the pid file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

from aiohttp import web

from gateway.clock import utc_now
from gateway.config.model import Caller, Config, load_config
from gateway.errors import ConfigError, ConfigErrors, GatewayError
from gateway.partners.loader import load_partners
from gateway.partners.model import LiveTable, Partner, current
from gateway.partners.standing import log_expiry_warnings

__all__ = [
    "PID_FILE",
    "RELOADER",
    "GatewayAlreadyRunning",
    "ReloadResult",
    "Reloader",
    "claim_pid_file",
    "gateway_process_alive",
    "owning_pid_file",
    "pid_file_of",
    "read_pid_file",
    "refresh_partner_keys",
    "reload_on_sighup",
    "remove_pid_file",
]

# The name operators filter on, the same as partner standing's (gateway.lifecycle before).
log = logging.getLogger("gateway.lifecycle")

# Partners' JWKS (public_key_url) are fetched again this often, besides on an
# unknown kid or when every key held has expired (gateway.crypto.seal.PartnerKeyCache).
KEY_REFRESH_S: Final = 600.0


# -- reload -----------------------------------------------------------------------------


# Config sections a running gateway cannot swap (sockets, the store, key material, the
# log's identity, the policy in force, the caller-token issuer, reviewer accounts):
# a change there is reported and takes effect at the next restart.
RESTART_ONLY: Final = (
    ("server", "[server]"),
    ("storage_url", "[storage]"),
    ("keys_dir", "[keys]"),
    ("log", "[log]"),
    ("policy", "[policy]"),
    ("auth", "[auth]"),
    ("reviewers", "[[reviewers]]"),
)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: `ok` False means nothing changed and `problems` says why."""

    ok: bool
    problems: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    restart_needed: tuple[str, ...] = ()

    def summary(self) -> str:
        if not self.ok:
            return "reload refused, the running partner set and config stay in force: " + (
                "; ".join(self.problems)
            )
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if ids
        ]
        text = "reloaded partners and config: " + ("; ".join(parts) or "no partner changed")
        if self.restart_needed:
            text += (
                f"; changes to {', '.join(self.restart_needed)} in config.toml take effect "
                "only at the next restart"
            )
        return text


Check = Callable[[Mapping[str, Partner]], None]
OnSwap = Callable[[Mapping[str, Partner], Mapping[str, Partner]], None]


@dataclass
class Reloader:
    """Reads config.toml and the partner files again and swaps them in, or changes nothing.

    Live after a reload: the partner table, `[[callers]]` (ids, roles, allowlists) and
    `[partners] warn_days`. `checks` run on the new partner set before the swap (the
    composition root adds its start-up checks: secret files readable and not exposed);
    any ConfigErrors they raise refuses the reload. `on_swap` hooks run after it
    (drop cached partner credentials and key files); `on_reload` hooks run on every
    reload, swapped or not (the witness policy file is read again: a bad one keeps the
    policy in force and logs `file:line`).
    """

    config_path: Path
    running: Config
    partners: LiveTable[Partner]
    callers: LiveTable[Caller] | None = None
    clock: Callable[[], datetime] = field(default=utc_now)
    checks: list[Check] = field(default_factory=list)
    on_swap: list[OnSwap] = field(default_factory=list)
    on_reload: list[Callable[[], object]] = field(default_factory=list)
    """Run on every reload, whatever became of the partner set (the witness policy)."""

    @property
    def warn_days(self) -> int:
        return self.running.partner_warn_days

    def reload(self) -> ReloadResult:
        try:
            config = load_config(self.config_path)
            fresh = load_partners(config.partners_dir, config.root)
            for check in self.checks:
                check(fresh)
        except ConfigErrors as exc:
            result = ReloadResult(ok=False, problems=tuple(str(e) for e in exc.errors))
        except ConfigError as exc:
            result = ReloadResult(ok=False, problems=(str(exc),))
        else:
            result = self._swap(config, fresh)
        if result.ok:
            log.info("%s", result.summary())
            log_expiry_warnings(fresh.values(), self.clock(), self.warn_days)
        else:
            log.error("%s", result.summary())
        for hook in self.on_reload:
            hook()
        return result

    def _swap(self, config: Config, fresh: Mapping[str, Partner]) -> ReloadResult:
        old = current(self.partners)
        restart = tuple(
            label
            for name, label in RESTART_ONLY
            if getattr(config, name) != getattr(self.running, name)
        )
        self.partners.replace(fresh)
        if self.callers is not None:
            self.callers.replace(config.callers)
        self.running = config
        for hook in self.on_swap:
            hook(old, fresh)
        return ReloadResult(
            ok=True,
            added=tuple(sorted(set(fresh) - set(old))),
            removed=tuple(sorted(set(old) - set(fresh))),
            changed=tuple(sorted(k for k in set(old) & set(fresh) if old[k] != fresh[k])),
            restart_needed=restart,
        )


RELOADER: Final = web.AppKey("reloader", Reloader)

# Where `gateway serve` writes its pid, for `gateway partners reload` (under the config's
# directory, next to the SQLite default).
PID_FILE: Final = Path("var") / "gateway.pid"


def pid_file_of(config: Config) -> Path:
    return config.root / PID_FILE


class GatewayAlreadyRunning(Exception):
    """`gateway serve` refused: the pid file names another live gateway on this config."""


def claim_pid_file(path: Path, pid: int) -> None:
    """Write `pid` to the pid file, unless it names another gateway that is still running:
    overwriting it would leave that one out of `gateway partners reload`, and the second
    one's exit would delete the file (GatewayAlreadyRunning). A stale file is taken over."""
    running = read_pid_file(path)
    if running is not None and running != pid and gateway_process_alive(running):
        raise GatewayAlreadyRunning(
            f"a gateway is already running on this config (pid {running}, {path}): stop it "
            f"first (kill {running}), or serve another config folder (--config) on another "
            "port (--port)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n", encoding="ascii")


def gateway_process_alive(pid: int) -> bool:
    """Whether `pid` is a live process that may be a gateway. Where /proc tells, a process
    whose command line does not mention gateway is not one: after a crash and a reboot the
    stale file's pid may belong to anything."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"gateway" in command


@contextmanager
def owning_pid_file(path: Path) -> Iterator[None]:
    """This process's pid in the pid file while the block runs (`claim_pid_file`), removed
    after it unless another gateway has the file by then."""
    claim_pid_file(path, os.getpid())
    try:
        yield
    finally:
        remove_pid_file(path, os.getpid())


def remove_pid_file(path: Path, pid: int) -> None:
    """Remove the pid file if it still names `pid` (never another gateway's)."""
    if read_pid_file(path) == pid:
        path.unlink(missing_ok=True)


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 1 else None


def reload_on_sighup(app: web.Application, also: Callable[[], None] | None = None) -> None:
    """Reload `app[RELOADER]` on SIGHUP while `app` runs (then call `also`, e.g. to pass
    the signal on to worker processes). For `gateway serve`; tests call `reload()`."""

    def on_signal() -> None:
        # Files are small and read at once; the running requests wait a few ms at most.
        app[RELOADER].reload()
        if also is not None:
            also()

    async def install(app: web.Application) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_signal)

    async def remove(app: web.Application) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    app.on_startup.append(install)
    app.on_cleanup.append(remove)


# -- scheduled key refresh ----------------------------------------------------------------


class KeyRefresher(Protocol):
    async def refresh(self, partner: Partner) -> None: ...


async def refresh_partner_keys(
    keys: KeyRefresher, partners: Mapping[str, Partner], every_s: float = KEY_REFRESH_S
) -> None:
    """Fetch every JWKS partner's keys each `every_s` (a background task): a rotation or
    a revoked key is seen without waiting for a disclosure to need it. A failure keeps
    the keys held and is logged; the next disclosure's own fetch reports it."""
    while True:
        await asyncio.sleep(every_s)
        for partner in list(current(partners).values()):
            if partner.encryption.public_key_url is None:
                continue
            try:
                await keys.refresh(partner)
            except GatewayError as exc:
                log.warning("scheduled key refresh of %s failed: %s", partner.id, exc.detail)
