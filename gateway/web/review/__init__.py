"""The review web page for the legal team (CONTRACT §4.8), mounted at /review/.

Server-rendered HTML (jinja2, autoescaped), no JavaScript: reviewers from
``[[reviewers]]`` sign in with a password (scrypt, or argon2 when argon2-cffi is
installed), then filter and export the disclosure log, open a disclosure with its
inclusion proof, see the log's integrity, justify emergency disclosures and approve
lawful requests.

Wiring (the composition root): ``add_review_routes(app, reviewers=…, session_key=…,
partners=…, clock=…)`` before the app starts, and ``app[REVIEW_BACKEND] = <ReviewBackend>``
once the store is open; the store itself is found under ``gateway.web.keys.STORE``.
"""

from gateway.web.review.backend import (
    OVERDUE_AFTER,
    REVIEW_BACKEND,
    IntegrityStatus,
    Justification,
    QueueItem,
    ReviewBackend,
)
from gateway.web.review.handlers import add_review_routes

__all__ = [
    "OVERDUE_AFTER",
    "REVIEW_BACKEND",
    "IntegrityStatus",
    "Justification",
    "QueueItem",
    "ReviewBackend",
    "add_review_routes",
]
