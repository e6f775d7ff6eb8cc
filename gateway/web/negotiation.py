"""Content negotiation by the Accept header: which of two media types a client ranks
higher. The consent records (JSON-LD or plain JSON) and the problem pages (JSON or HTML)
both ask it."""

from __future__ import annotations

__all__ = ["prefers", "quality"]


def quality(accept: str, media_type: str) -> float:
    """The q of the most specific range of `accept` that matches `media_type` (exact,
    `type/*` or `*/*`; 0: none). Of two equally specific ranges, the first decides."""
    kind = media_type.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)  # (specificity, q)
    for item in accept.split(","):
        range_, *params = (part.strip() for part in item.split(";"))
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(range_.lower())
        if specificity is None or specificity <= best[0]:
            continue
        q = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(number)
                except ValueError:
                    q = 0.0
        best = (specificity, q)
    return best[1]


def prefers(accept: str | None, media_type: str, *, over: str) -> bool:
    """Whether `accept` ranks `media_type` strictly above `over` (a tie, or no header,
    is `over`)."""
    if not accept:
        return False
    return quality(accept, media_type) > quality(accept, over)
