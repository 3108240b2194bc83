"""What scrob's own processes (the command and its writer process) do that a library
must not do to its caller: collect garbage less often (the writer: never), and end
without the teardown."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn

#: New container objects between two runs of the cyclic garbage collector (Python's
#: default is 700). A sync or an import makes millions of them (parsed pages, records,
#: rows), and nearly none in a cycle: with the default, a ListenBrainz sync of 100,000
#: listens spent 0.24–0.42 CPU-s (8–13 %) in ~1,100 collections that found nothing;
#: with 20,000, 0.03 s. Whatever cycles there are still get collected, just later.
GC_EVERY = 20_000


def collect_rarely() -> None:
    gc.set_threshold(GC_EVERY, *gc.get_threshold()[1:])


def collect_never() -> None:
    """For the writer process, which lives for one command and makes no reference cycles
    of its own: its batches are millions of containers that even rare collections walked
    again and again (~7 % of the writer's time in a million-listen import, perf), and
    its peak memory is the same without them."""
    gc.disable()


@contextmanager
def collecting_never() -> Iterator[None]:
    """``collect_never`` for the length of one big job (an import), then as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fill_standard_streams() -> None:
    """Give a standard stream the process was started without (``>&-``: Python then sets
    it to None) the null device. What would be printed is dropped, as into a closed
    pipe, instead of failing the command; and no file opened later (the archive) can
    get descriptor 1 or 2, where a stray write would land in it."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None:
            continue
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def leave(code: int, *streams: IO[Any]) -> NoReturn:
    """End the process without the interpreter's teardown (finalizing its modules and
    objects took ~50 ms, at the end of every command and of every writer process).
    The caller has closed everything it opened; what ``streams`` and the standard
    streams hold is flushed first (a reader that has gone away gets nothing, as it
    would anyway)."""
    for stream in (*streams, sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream
            pass
    os._exit(code)
