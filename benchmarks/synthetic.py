"""A synthetic listening history with realistic name distributions.

Tens of thousands of artists with a long tail (Zipf-like weights), a few albums and up to
a few dozen tracks per artist, spread over 20 years. Deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

SYLLABLES = ["ka", "lo", "mi", "ra", "the", "son", "vel", "dar", "ne", "qu", "ix", "or",
             "bel", "ström", "café", "ño", "ae", "zu", "pa", "lin", "ghost", "moon", "ré"]


def _name(rng: random.Random, words: int) -> str:
    return " ".join(
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))).capitalize()
        for _ in range(words)
    )


def history(n: int, *, artists: int = 40_000, years: int = 20, end: int = 1_790_000_000,
            seed: int = 1) -> Iterator[dict[str, object]]:
    """``n`` listens in scrob's NDJSON shape, oldest first."""
    rng = random.Random(seed)
    names = [f"{_name(rng, rng.randint(1, 3))} {i}" for i in range(artists)]
    weights = [1.0 / (rank + 1) ** 1.07 for rank in range(artists)]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    albums = {}
    tracks = {}
    span = years * 365 * 86400
    start = end - span
    times = sorted(rng.randrange(start, end) for _ in range(n))
    picks = rng.choices(range(artists), cum_weights=cum, k=n)
    for ts, a in zip(times, picks, strict=True):
        if a not in tracks:
            tracks[a] = [_name(rng, rng.randint(1, 4)) for _ in range(rng.randint(3, 40))]
            albums[a] = [_name(rng, rng.randint(1, 3)) for _ in range(rng.randint(1, 5))]
        t = min(int(rng.paretovariate(1.3)) - 1, len(tracks[a]) - 1)
        yield {
            "listened_at": ts,
            "artist": names[a],
            "track": tracks[a][t],
            "album": albums[a][t % len(albums[a])],
            "duration": 120 + (a * 7 + t * 13) % 300,
        }


def write_ndjson(path: str, n: int, **kwargs: object) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in history(n, **kwargs):  # type: ignore[arg-type]
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
