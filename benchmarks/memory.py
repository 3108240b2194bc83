"""Peak memory of a scrob process and of the writer process it may start.

Read from /proc while they run: each process's own high-water mark (``VmHWM``), summed
over the process and its children. Not ``ru_maxrss`` / ``RUSAGE_CHILDREN``: Linux carries
that across fork+exec, so a scrob started by a benchmark (which holds the fake server's
listens) would report the benchmark's size. ``VmHWM`` starts afresh at exec; a child
caught between fork and exec (still scrob's command line and scrob's shared pages) is
skipped until it runs its own program. The sum of each process's peak is at least the
peak of their sum, so the figure never flatters scrob.
"""

from __future__ import annotations

import os
import threading


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return None


# Linux lists each thread's children in /proc (CONFIG_PROC_CHILDREN): a few small reads
# instead of reading every process's parent (~1.3 ms a scan on a quiet machine, polled
# every 20 ms: 6 % of a core taken from the run being measured)
_PER_THREAD = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children(pid: int) -> list[int]:
    """The processes ``pid`` has started and that still run."""
    if not _PER_THREAD:
        return _scan_children(pid)
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    found = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(child) for child in fh.read().split())
        except OSError:
            continue  # a thread that has ended
    return found


def _scan_children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces: the parent id follows its ")"
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(name))
    return found


class PeakRss:
    """Polls ``pid`` and its children every ``interval`` seconds until ``stop()``."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.last: dict[int, int] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        own = _cmdline(self.pid)
        while not self._done.is_set():
            for pid in [self.pid, *_children(self.pid)]:
                # a child caught between fork and exec still shows scrob's command line
                # and scrob's (shared) pages: skip it until it runs its own program
                if pid != self.pid and _cmdline(pid) == own:
                    continue
                kib = _hwm_kib(pid)
                if kib is not None:
                    self.last[pid] = kib
            self._done.wait(self.interval)

    def stop(self) -> float:
        """Stop polling; the peak in MB (processes summed) and how many were seen."""
        self._done.set()
        self._thread.join()
        return sum(self.last.values()) / 1024

    def each(self) -> str:
        """Each process's peak in MB, scrob first (for the figures' notes)."""
        return " + ".join(f"{kib / 1024:.0f}" for kib in self.last.values())
