"""One error family for the whole gateway.

Each error carries the problem code of CONTRACT §4 and its HTTP status (both from
gateway.problem_catalog); the web layer turns any of them into an RFC 9457 problem
document in one place, the CLI into a message and an exit code. Details never hold a
personal value.
"""

from __future__ import annotations

from typing import Final

from gateway.problem_catalog import CATALOGUE, PROBLEM_PATH

PROBLEM_BASE: Final = PROBLEM_PATH
"""Each problem's `type` is this relative reference + its code; GET /problems/<code>
on the gateway explains the code (gateway.problem_catalog holds the text)."""

# code -> (HTTP status, title)
PROBLEMS: Final[dict[str, tuple[int, str]]] = {
    code: (kind.status, kind.title) for code, kind in CATALOGUE.items()
}


class GatewayError(Exception):
    """A refusal or failure with a contract problem code.

    `detail` says what is wrong and what would make it pass; it must never
    quote a personal value. `retry_after_s`: when a retry can succeed, if known.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        disclosure_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        if code not in PROBLEMS:
            raise ValueError(f"unknown problem code {code!r}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.disclosure_id = disclosure_id
        # Seconds after which the same call can succeed (the answer's Retry-After); None
        # leaves it to the catalogue's rule for the code (gateway.problem_catalog).
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]

    @property
    def title(self) -> str:
        return PROBLEMS[self.code][1]

    def problem(self) -> dict[str, object]:
        """The RFC 9457 problem document for this error."""
        doc: dict[str, object] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.disclosure_id is not None:
            doc["disclosure_id"] = self.disclosure_id
        return doc


class ConfigError(Exception):
    """A partner file or config.toml that breaks a rule, located as `file:line`."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class ConfigErrors(Exception):
    """Every problem found in a set of files, so an operator fixes them in one pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
