"""A keyring backend for tests: a JSON file named by SCROB_TEST_KEYRING (or memory).

Subprocess tests select it with PYTHON_KEYRING_BACKEND, so no test ever touches the
real OS keyring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _path(self) -> Path | None:
        name = os.environ.get("SCROB_TEST_KEYRING")
        return Path(name) if name else None

    def _load(self) -> dict[str, str]:
        path = self._path()
        if path is None:
            return _MEMORY
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        path = self._path()
        if path is not None:
            path.write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(username)
        self._save(data)


_MEMORY: dict[str, str] = {}
