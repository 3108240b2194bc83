"""One writer at a time: a lock file beside the archive, waited for a bounded time.

An OS-level lock (``filelock``) rather than a row in the database, so ``kill -9`` or a
power cut can never leave it held: the kernel drops it with the process.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ArchiveBusy, ArchiveError
from . import DEFAULT_WAIT


class WriteLock:
    def __init__(self, archive_path: Path, wait: float = DEFAULT_WAIT) -> None:
        # Beside the file itself: through a symbolic link or another spelling of its
        # path, two writers must still meet at the same lock.
        self.path = Path(str(Path(archive_path).resolve()) + ".lock")
        self.wait = wait
        self._lock = FileLock(str(self.path))

    def acquire(self) -> None:
        try:
            self._lock.acquire(timeout=self.wait)
        except Timeout:
            raise ArchiveBusy(
                f"the archive {self.path.with_suffix('')} is busy: another scrob is writing "
                f"to it (waited {self.wait:g}s)",
                hint="try again when it has finished, or raise SCROB_LOCK_WAIT",
            ) from None
        except OSError as exc:  # an unwritable directory, a read-only file system
            raise ArchiveError(f"cannot lock the archive at {self.path}: {exc.strerror}",
                               hint="choose an archive in a directory you can write to: "
                                    "`scrob --db PATH ...` or SCROB_DB") from None
        try:  # tell a curious user which process holds it
            os.truncate(self.path, 0)
            with open(self.path, "a") as fh:
                fh.write(f"{os.getpid()}\n")
        except OSError:
            pass

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
