"""Importing a library without the optional modules it loads whenever they are installed.

sqlite-utils loads numpy and pandas, httpx its own command-line client (rich, pygments),
keyring its macOS bindings on every platform: tens of milliseconds and megabytes in
commands that never use them. Each library treats an ImportError from those modules
as "not installed", so blocking them for the length of one import changes nothing else.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without(*modules: str) -> Iterator[None]:
    """Inside, importing any of ``modules`` not imported yet raises ImportError; after,
    they are importable again (nothing stays blocked for the rest of the process)."""
    blocked = [name for name in modules if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import raises
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
