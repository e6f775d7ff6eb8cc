"""The overview's witness card (`overview.witness_view`): what /readyz knows of the
witnesses — the witnessed checkpoint's size and age, the quorum, a rollback alarm — read
from the app's WitnessRunner, against a hand-written stand-in for it and for the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from gateway.errors import LogUnavailableError
from gateway.outbound.witnesses import RollbackAlarm
from gateway.store.records import StoredCheckpoint
from gateway.web.keys import STORE, WITNESSES
from gateway.web.review.overview import witness_view

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Checkpoints:
    def __init__(self, latest: StoredCheckpoint | None) -> None:
        self.latest = latest

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self.latest


@dataclass
class Runner:
    witnessed: StoredCheckpoint | None
    quorum_met: bool | None = True
    alarms: dict[str, RollbackAlarm] = field(default_factory=dict)
    not_cosigned: dict[str, str] = field(default_factory=dict)
    policy: Any = field(default_factory=lambda: SimpleNamespace(quorum="both", witnesses={"a": 1}))
    fails: bool = False

    @property
    def active(self) -> bool:
        return bool(self.policy.witnesses)

    async def witnessed_checkpoint(self) -> StoredCheckpoint | None:
        if self.fails:
            raise LogUnavailableError("the database is unavailable")
        return self.witnessed


def request(runner: Runner | None, latest: StoredCheckpoint | None) -> Any:
    found: dict[Any, Any] = {STORE: Checkpoints(latest)}
    if runner is not None:
        found[WITNESSES] = runner
    return SimpleNamespace(config_dict=found)


LATEST = StoredCheckpoint(120, "note", NOW - timedelta(seconds=30))
WITNESSED = StoredCheckpoint(118, "note", NOW - timedelta(minutes=2))


async def test_witnessed_checkpoint_with_its_size_age_and_quorum() -> None:
    view = await witness_view(request(Runner(WITNESSED), LATEST), NOW)
    assert view.configured and view.quorum == "both" and view.quorum_met is True
    assert (view.witnessed_size, view.witnessed_age) == (118, timedelta(minutes=2))
    assert (view.latest_size, view.latest_age) == (120, timedelta(seconds=30))
    assert view.alarms == () and view.error is None


async def test_a_rollback_alarm_and_a_missing_cosignature_are_shown() -> None:
    runner = Runner(
        None,
        quorum_met=False,
        alarms={"w1": RollbackAlarm("w1", 500, 120, "larger tree")},
        not_cosigned={"w2": "unreachable"},
    )
    view = await witness_view(request(runner, LATEST), NOW)
    assert view.alarms == ("witness w1 has cosigned size 500; the log has 120 entries",)
    assert view.quorum_met is False and view.witnessed_size is None
    assert view.not_cosigned == (("w2", "unreachable"),)


async def test_no_witnesses_and_an_unreadable_store() -> None:
    view = await witness_view(request(None, None), NOW)
    assert not view.configured and view.latest_size is None
    unconfigured = Runner(None, policy=SimpleNamespace(quorum="none", witnesses={}))
    assert not (await witness_view(request(unconfigured, LATEST), NOW)).configured
    failing = await witness_view(request(Runner(None, fails=True), LATEST), NOW)
    assert failing.configured and failing.error == "the database is unavailable"
