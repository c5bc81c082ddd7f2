"""Store rows as the routes answer with them: the caller's own row or a 404, and
one page of a listing with the cursor of the next."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from ..auth import owner
from ..errors import not_found

Row = TypeVar("Row")
Answer = TypeVar("Answer")


def mine(
    session: Session, what: str, ident: int, find: Callable[..., Row | None], **options: Any
) -> Row:
    """``find(session, ident, owner=..., **options)`` for the caller's key, or a 404.

    Another owner's row answers as if it did not exist, so ids reveal nothing.
    """
    row = find(session, ident, owner=owner(), **options)
    if row is None:
        raise not_found(what, ident)
    return row


def one_page(
    rows: Sequence[Row], limit: int, answer: Callable[[Row], Answer], cursor: str = "id"
) -> tuple[list[Answer], int | None]:
    """The first ``limit`` rows as answers, and the next page's cursor (None on the last):
    the ``cursor`` attribute of the page's last answer.

    ``rows`` is fetched one past ``limit``: that one extra row says whether a next page exists.
    """
    page = [answer(row) for row in rows[:limit]]
    return page, (int(getattr(page[-1], cursor)) if len(rows) > limit else None)
