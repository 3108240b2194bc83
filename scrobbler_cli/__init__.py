"""scrob: a personal scrobble archiver — the library behind the ``scrob`` command.

The public API is importable without the CLI. Names are loaded lazily so that
``scrob --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Archive",
    "SourceRecord",
    "Account",
    "Page",
    "SyncReport",
    "ExportReport",
    "StatsReport",
    "ScrobError",
    "import_file",
    "compute_stats",
    "save_pages",
    "sync_account",
    "export_listens",
    "__version__",
]

_LAZY = {
    "Archive": "scrobbler_cli.archive",
    "SourceRecord": "scrobbler_cli.models",
    "Account": "scrobbler_cli.models",
    "Page": "scrobbler_cli.models",
    "SyncReport": "scrobbler_cli.models",
    "ExportReport": "scrobbler_cli.models",
    "StatsReport": "scrobbler_cli.models",
    "ScrobError": "scrobbler_cli.errors",
    "import_file": "scrobbler_cli.importers",
    "compute_stats": "scrobbler_cli.stats",
    "save_pages": "scrobbler_cli.sync",
    "sync_account": "scrobbler_cli.sync",
    "export_listens": "scrobbler_cli.export",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scrobbler_cli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
