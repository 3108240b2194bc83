"""Comparison keys for names: the one normalization every identity rule uses.

The original spelling is always kept for display; only these keys are compared.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_FOLD = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u00b4": "'", "`": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
    }
)

#: Separates the artist part from the track or album part of a composite key.
SEP = "\x1f"


# Any character ``_FOLD`` changes: most names have none, and skipping ``translate`` then
# (a dict lookup per character) halves the cost of a key.
_TO_FOLD = re.compile("[" + re.escape("".join(map(chr, _FOLD))) + "]")


@lru_cache(maxsize=32768)
def name_key(name: str) -> str:
    """NFKC, case folding, typographic quotes and dashes folded to ASCII, and
    whitespace trimmed and collapsed. Cached: names repeat a great deal in a history."""
    # NFKC keeps ASCII as it is, and folding its case is lower()
    folded = (name.lower() if name.isascii()
              else unicodedata.normalize("NFKC", name).casefold())
    if _TO_FOLD.search(folded):
        folded = folded.translate(_FOLD)
    return " ".join(folded.split())


def track_key(artist: str, track: str) -> str:
    """The identity of a track: its artist's key and its own."""
    return name_key(artist) + SEP + name_key(track)


def album_key(artist: str, album: str) -> str:
    return name_key(artist) + SEP + name_key(album)
