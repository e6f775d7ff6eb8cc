"""The typed AppKeys under which the composition root (`web/app.py`) puts what handlers use.

One place for them, so a handler, a review page or a test finds the store, the gateway or
the log service without importing another handler's module. The review backend's key,
`REVIEW_BACKEND`, stays beside its Protocol in `web/review/backend.py`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.callers.tokens import CallerAuthenticator
from gateway.disclosure.flow import Gateway
from gateway.log.actions import ActionLog
from gateway.log.service import LogService
from gateway.observe.metrics import Metrics
from gateway.outbound.witness_runner import WitnessRunner
from gateway.partners.standing import Suspensions
from gateway.rights.outbox import NoticeOutbox
from gateway.store.base import Store

__all__ = [
    "ACTIONS",
    "AUTH",
    "GATEWAY",
    "LOG",
    "METRICS",
    "NOTICES",
    "STORE",
    "SUSPENSIONS",
    "WITNESSES",
]

GATEWAY: Final = web.AppKey("gateway", Gateway)
AUTH: Final = web.AppKey("auth", CallerAuthenticator)
STORE: Final = web.AppKey("store", Store)
LOG: Final = web.AppKey("log", LogService)
SUSPENSIONS: Final = web.AppKey("suspensions", Suspensions)
METRICS: Final = web.AppKey("metrics", Metrics)
WITNESSES: Final = web.AppKey("witnesses", WitnessRunner)
# Where a person's acts are recorded (gateway.log.actions): the log, before the tables.
ACTIONS: Final = web.AppKey("actions", ActionLog)
# Notices partners did not accept yet, tried again on a schedule (gateway.rights.outbox).
NOTICES: Final = web.AppKey("notices", NoticeOutbox)
