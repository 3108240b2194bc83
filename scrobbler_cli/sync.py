"""The sync engine: pages from a service into the archive, each page with its cursor.

Service modules yield ``Page`` objects (records plus the cursor that holds once they are
saved); ``save_pages`` commits each page and its cursor in one transaction, so an
interruption at any instant loses nothing and a re-run finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .archive import Archive
from .models import Account, Page, SaveResult

__all__ = ["save_pages"]


def save_pages(
    archive: Archive,
    account: Account,
    pages: Iterable[Page],
    *,
    on_page: Callable[[Page, SaveResult], None] | None = None,
) -> SaveResult:
    """Save every page in order; returns the totals."""
    total = SaveResult()
    for page in pages:
        saved = archive.save_records(account, page.records, cursor=page.cursor)
        total.add(saved)
        if on_page:
            on_page(page, saved)
    return total
