"""Keyset paging of list RPCs: page sizes and opaque page tokens holding a stream sequence."""

from __future__ import annotations

import base64

from careops_platform.errors import FieldViolation, InvalidArgument

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_CURSOR = 2**63 - 1  # a stream sequence as SQL compares it (BIGINT / SQLite INTEGER)


def page_size(requested: int, *, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    """Returns the page size to use (0 means the default); raises InvalidArgument outside 1..max."""
    size = requested or default
    if not 0 < size <= maximum:
        raise InvalidArgument(
            f"page_size must be 1..{maximum} (0: the default)",
            [FieldViolation("page_size", f"1..{maximum}")],
        )
    return size


def page_token(sequence: int) -> str:
    """Returns the token of the page that continues after `sequence`."""
    return base64.urlsafe_b64encode(str(sequence).encode()).decode()


def page_cursor(token: str, rpc: str) -> int:
    """Returns the sequence a token continues after (0 for no token); raises InvalidArgument
    naming `rpc` for a token it did not return."""
    if not token:
        return 0
    malformed = InvalidArgument(
        f"page_token is not a token returned by {rpc}",
        [FieldViolation("page_token", "malformed")],
    )
    try:
        sequence = int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError as exc:
        raise malformed from exc
    if not 0 <= sequence <= MAX_CURSOR:
        raise malformed
    return sequence
