"""What scrob's own processes (the command and its writer process) do that a library
must not do to its caller: collect garbage less often, and end without the teardown."""

from __future__ import annotations

import gc
import os
import sys
from typing import IO, Any, NoReturn

#: New container objects between two runs of the cyclic garbage collector (Python's
#: default is 700). A sync or an import makes millions of them (parsed pages, records,
#: rows), and nearly none in a cycle: with the default, a ListenBrainz sync of 100,000
#: listens spent 0.24–0.42 CPU-s (8–13 %) in ~1,100 collections that found nothing;
#: with 20,000, 0.03 s. Whatever cycles there are still get collected, just later.
GC_EVERY = 20_000


def collect_rarely() -> None:
    gc.set_threshold(GC_EVERY, *gc.get_threshold()[1:])


def leave(code: int, *streams: IO[Any]) -> NoReturn:
    """End the process without the interpreter's teardown (finalizing its modules and
    objects took ~50 ms, at the end of every command and of every writer process).
    The caller has closed everything it opened; what ``streams`` and the standard
    streams hold is flushed first (a reader that has gone away gets nothing, as it
    would anyway)."""
    for stream in (*streams, sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream
            pass
    os._exit(code)
