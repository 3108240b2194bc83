"""One engine per service: its paging and cursor rules for sync, its rules for export.

Each module provides ``sync(archive, config, options) -> SyncReport`` and
``export(archive, config, options) -> ExportReport``.
"""
