"""The problem table under its server name: the one table is `gateway_client.problems`.

The SDK holds it because the SDK may import nothing of the server; the server imports it
(a leaf: it needs only the standard library), so a code, its status and its retry rule
cannot differ between the two. Server modules keep importing from here.
"""

from gateway_client.problems import (
    CATALOGUE,
    KEY_RECHECK_S,
    LEGACY_PROBLEM_BASE,
    LOG_RETRY_AFTER_S,
    PARTNER_RETRY_AFTER_S,
    PROBLEM_PATH,
    SHED_RETRY_AFTER_S,
    ProblemKind,
    problem_code,
)

__all__ = [
    "CATALOGUE",
    "KEY_RECHECK_S",
    "LEGACY_PROBLEM_BASE",
    "LOG_RETRY_AFTER_S",
    "PARTNER_RETRY_AFTER_S",
    "PROBLEM_PATH",
    "SHED_RETRY_AFTER_S",
    "ProblemKind",
    "problem_code",
]
