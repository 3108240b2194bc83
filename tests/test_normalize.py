"""One normalization for every name comparison; the original spelling stays for display."""

from __future__ import annotations

import random
import unicodedata

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.models import Account, SourceRecord
from scrobbler_cli.normalize import _FOLD, SEP, album_key, name_key, track_key

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # NFKC: compatibility forms fold to their plain letters
        ("\uff2d\uff55\uff53\uff45", "Muse"),  # fullwidth
        ("\ufb01re", "fire"),  # the "fi" ligature
        ("Cafe\u0301", "Caf\u00e9"),  # combining accent vs precomposed
        ("\u2460", "1"),  # circled digit
        # case folding, beyond lower(): German sharp s
        ("STRASSE", "stra\u00dfe"),
        ("R\u00d6YKSOPP", "r\u00f6yksopp"),
        # whitespace trimmed and collapsed, any kind of space
        ("  The   National ", "the national"),
        ("The\tNational\n", "the national"),
        ("The\u00a0National", "the national"),  # no-break space
        ("The\u3000National", "the national"),  # ideographic space
        # typographic quotes to ASCII
        ("Don\u2019t Stop Me Now", "Don't Stop Me Now"),
        ("\u2018Til I Die", "'Til I Die"),
        ("\u201cHeroes\u201d", '"Heroes"'),
        ("\u00abHeroes\u00bb", '"Heroes"'),
        # dashes to ASCII hyphen-minus
        ("Jay\u2010Z", "Jay-Z"),
        ("Song \u2013 Live", "Song - Live"),
        ("Song \u2014 Live", "song - live"),
        ("A\u2212B", "a-b"),
    ],
)
def test_variants_share_one_key(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Muse", "Muser"),
        ("The National", "National"),  # no article stripping: different names
        ("Caf\u00e9", "Cafe"),  # accents are significant
        ("AC/DC", "ACDC"),
        ("Sigur R\u00f3s", "Sigur Ros"),
    ],
)
def test_different_names_keep_different_keys(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


def _reference_key(name: str) -> str:
    """archive.md's normalization, step by step, with no shortcut."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_FOLD)
    return " ".join(folded.split())


def test_key_shortcuts_change_nothing() -> None:
    # name_key skips NFKC for ASCII and the fold table when no character of it is there;
    # every character up to U+3100, alone and between letters, and random mixes of the
    # tricky ones give the reference key
    for code in range(0x3100):
        for text in (chr(code), f"Ab{chr(code)}c D", f" {chr(code)}\u0301X "):
            assert name_key.__wrapped__(text) == _reference_key(text), repr(text)
    tricky = [*map(chr, _FOLD), "A", "z", " ", "\t", "\u00a0", "\u0301", "\ufb01", "\uff2d",
              "\u00df", "\u0130", "\u2460", "\u3000", "\u2033", "1", "'", '"', "-"]
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice(tricky) for _ in range(rng.randint(0, 8)))
        assert name_key.__wrapped__(text) == _reference_key(text), repr(text)


def test_key_is_folded_and_plain() -> None:
    assert name_key("  \u201cHello\u201d \u2014  WORLD\u2019s  ") == "\"hello\" - world's"


def test_track_and_album_keys_keep_artist_and_title_apart() -> None:
    # "a b" + "c" must not collide with "a" + "b c"
    assert track_key("a b", "c") != track_key("a", "b c")
    assert track_key("The  Cure", "Lovesong") == name_key("the cure") + SEP + "lovesong"
    assert album_key("Radiohead", "OK\u00a0Computer") == "radiohead" + SEP + "ok computer"


def test_empty_and_blank_names() -> None:
    assert name_key("") == ""
    assert name_key(" \t\n ") == ""


def test_archive_matches_variants_and_keeps_first_spelling_for_display(tmp_path) -> None:
    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(LASTFM, [
            SourceRecord(1_000_000, "Beyonc\u00e9", "Don\u2019t  Hurt Yourself",
                         album="Lemonade \u2013 Deluxe"),
        ])
        # the same play as ListenBrainz spells it, 40 s later
        saved = archive.save_records(LB, [
            SourceRecord(1_000_040, " BEYONCE\u0301 ", "don't hurt yourself",
                         album="LEMONADE - DELUXE"),
        ])
        assert (saved.new, saved.merged) == (0, 1)
        [listen] = list(archive.listens())
        # shown as the first source spelled it, not as the key
        assert listen.artist == "Beyonc\u00e9"
        assert listen.track == "Don\u2019t  Hurt Yourself"
        assert listen.album == "Lemonade \u2013 Deluxe"
        assert listen.accounts == ("lastfm:alice", "listenbrainz:alice")
        # a later listen spelled differently still displays its own spelling
        archive.save_records(LB, [SourceRecord(2_000_000, "beyonce\u0301", "Formation")])
        newest = next(archive.listens(newest_first=True))
        assert (newest.artist, newest.track) == ("beyonce\u0301", "Formation")
        # but both count for one artist
        archive.fold_counts()
        rows = archive.conn.execute("SELECT name, listens FROM artists").fetchall()
        assert rows == [("Beyonc\u00e9", 2)]


def test_listens_filters_compare_normalized_names(tmp_path) -> None:
    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(LASTFM, [
            SourceRecord(1000, "Sigur R\u00f3s", "Hopp\u00edpolla", album="Takk\u2026"),
            SourceRecord(2000, "Sigur Ros", "Hoppipolla"),
        ])
        hits = list(archive.listens(artist="  SIGUR  R\u00d3S"))
        assert [h.listened_at for h in hits] == [1000]
        assert [h.listened_at for h in archive.listens(track="HOPP\u00cdPOLLA")] == [1000]
        # NFKC folds the ellipsis character to three dots
        assert [h.listened_at for h in archive.listens(album="takk...")] == [1000]
