"""`scrob stats` against hand-computed numbers."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.models import Account, SourceRecord
from scrobbler_cli.stats import compute_stats

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def r(when: str, artist: str, track: str, album: str | None = None) -> SourceRecord:
    return SourceRecord(utc(when), artist, track, album=album)


# May 2024 (UTC), by hand:
#   Radiohead   Reckoner x3, Nude x1  (In Rainbows)      -> 4
#   Blur        Song 2 x3 (one spelled "SONG 2")  (Blur)  -> 3
#   Portishead  Roads x1 (no album)                      -> 1
#   Massive Attack Teardrop at 2024-05-31T23:30Z         -> 1 (June in Berlin)
# plus a Reckoner play ListenBrainz also saw (counted once) and a June listen.
MAY_LASTFM = [
    r("2024-05-10T10:00:00", "Radiohead", "Reckoner", "In Rainbows"),
    r("2024-05-10T10:04:00", "Radiohead", "Reckoner", "In Rainbows"),
    r("2024-05-12T08:00:00", "Radiohead", "Reckoner", "In Rainbows"),
    r("2024-05-12T08:10:00", "Radiohead", "Nude", "In Rainbows"),
    r("2024-05-13T20:00:00", "Blur", "Song 2", "Blur"),
    r("2024-05-14T20:00:00", "Blur", "SONG 2", "blur"),
    r("2024-05-15T20:00:00", "Blur", "Song 2", "Blur"),
    r("2024-05-20T12:00:00", "Portishead", "Roads"),
    r("2024-05-31T23:30:00", "Massive Attack", "Teardrop", "Mezzanine"),
]
MAY_LB = [r("2024-05-12T08:01:30", "radiohead", "reckoner", "In Rainbows")]
JUNE = [r("2024-06-15T09:00:00", "Radiohead", "Reckoner", "In Rainbows")]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "archive.db"
    with Archive(path) as archive:
        archive.save_records(LASTFM, MAY_LASTFM + JUNE)
        archive.save_records(LB, MAY_LB)
    return str(path)


def stats(scrob, db: str, *args: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    result = scrob("--db", db, "stats", "--json", *args)
    assert result.code == 0, result.err
    assert result.err == ""
    return result.json()  # type: ignore[no-any-return]


def test_calendar_month_in_utc(scrob, db: str) -> None:
    assert stats(scrob, db, "--month", "2024-05", "--tz", "UTC") == {
        "from": utc("2024-05-01T00:00:00"),
        "to": utc("2024-06-01T00:00:00"),
        "total_listens": 9,
        "unique_artists": 4,
        "unique_tracks": 5,
        "top_artists": [
            {"artist": "Radiohead", "listens": 4},
            {"artist": "Blur", "listens": 3},
            {"artist": "Massive Attack", "listens": 1},
            {"artist": "Portishead", "listens": 1},
        ],
        "top_albums": [
            {"artist": "Radiohead", "album": "In Rainbows", "listens": 4},
            {"artist": "Blur", "album": "Blur", "listens": 3},
            {"artist": "Massive Attack", "album": "Mezzanine", "listens": 1},
        ],
        "top_tracks": [
            {"artist": "Blur", "track": "Song 2", "listens": 3},
            {"artist": "Radiohead", "track": "Reckoner", "listens": 3},
            {"artist": "Massive Attack", "track": "Teardrop", "listens": 1},
            {"artist": "Portishead", "track": "Roads", "listens": 1},
            {"artist": "Radiohead", "track": "Nude", "listens": 1},
        ],
    }


def test_calendar_month_across_a_time_zone_boundary(scrob, db: str) -> None:
    # 2024-05-31T23:30Z is 2024-06-01T01:30 in Berlin (CEST, UTC+2)
    berlin_may = stats(scrob, db, "--month", "2024-05", "--tz", "Europe/Berlin")
    berlin_june = stats(scrob, db, "--month", "2024-06", "--tz", "Europe/Berlin")
    utc_june = stats(scrob, db, "--month", "2024-06", "--tz", "UTC")
    assert (berlin_may["from"], berlin_may["to"]) == (utc("2024-04-30T22:00:00"),
                                                      utc("2024-05-31T22:00:00"))
    assert berlin_may["total_listens"] == 8
    assert "Massive Attack" not in [a["artist"] for a in berlin_may["top_artists"]]
    assert berlin_june["total_listens"] == 2
    assert [a["artist"] for a in berlin_june["top_artists"]] == ["Massive Attack", "Radiohead"]
    assert utc_june["total_listens"] == 1


def test_calendar_year_across_a_time_zone_boundary(scrob, tmp_path: Path) -> None:
    path = tmp_path / "years.db"
    with Archive(path) as archive:
        archive.save_records(LASTFM, [r("2023-12-31T23:30:00", "Pulp", "Disco 2000"),
                                      r("2024-01-01T03:00:00", "Pulp", "Common People")])
    db = str(path)
    assert stats(scrob, db, "--year", "2023", "--tz", "UTC")["total_listens"] == 1
    assert stats(scrob, db, "--year", "2024", "--tz", "UTC")["total_listens"] == 1
    assert stats(scrob, db, "--year", "2024", "--tz", "Europe/Berlin")["total_listens"] == 2
    # 03:00Z on New Year's Day is still 2023 in New York
    assert stats(scrob, db, "--year", "2023", "--tz", "America/New_York")["total_listens"] == 2
    berlin = stats(scrob, db, "--year", "2024", "--tz", "Europe/Berlin")
    assert (berlin["from"], berlin["to"]) == (utc("2023-12-31T23:00:00"),
                                              utc("2024-12-31T23:00:00"))


def test_from_to_is_inclusive_exclusive(scrob, db: str) -> None:
    got = stats(scrob, db, "--from", "2024-05-12T08:00:00+00:00", "--to", "2024-05-13T20:00Z")
    # Reckoner at 08:00 (with its ListenBrainz twin, once) and Nude; Song 2 at 20:00 excluded
    assert got["total_listens"] == 2
    assert got["from"] == utc("2024-05-12T08:00:00")
    assert got["to"] == utc("2024-05-13T20:00:00")
    dates = stats(scrob, db, "--from", "2024-05-13", "--to", "2024-05-16", "--tz", "UTC")
    assert dates["total_listens"] == 3
    assert dates["top_tracks"] == [{"artist": "Blur", "track": "Song 2", "listens": 3}]
    unix = stats(scrob, db, "--from", str(utc("2024-06-01T00:00:00")))
    assert unix["total_listens"] == 1


def test_from_without_to_runs_until_now(scrob, db: str) -> None:
    before = int(time.time())
    got = stats(scrob, db, "--from", "2024-05-31", "--tz", "UTC")
    assert got["total_listens"] == 2
    assert before <= got["to"] <= int(time.time()) + 1


def test_rolling_ranges_end_now(scrob, tmp_path: Path) -> None:
    now = int(time.time())
    day = 86400
    ages = [0, 1, 6, 20, 60, 120, 300, 1000]  # days ago (0: this very second)
    path = tmp_path / "rolling.db"
    with Archive(path) as archive:
        archive.save_records(LASTFM, [SourceRecord(now - a * day, f"Artist {a}", "Track")
                                      for a in ages])
    db = str(path)
    expected = {"week": 3, "month": 4, "quarter": 5, "half-year": 6, "year": 7, "all": 8}
    for name, total in expected.items():
        got = stats(scrob, db, "--range", name)
        assert got["total_listens"] == total, name
        assert got["to"] >= now
    week = stats(scrob, db, "--range", "week")
    assert week["to"] - week["from"] == 7 * day
    assert stats(scrob, db)["total_listens"] == 4  # the default is a rolling month


def test_by_and_limit(scrob, db: str) -> None:
    month = ("--month", "2024-05", "--tz", "UTC")
    artists = stats(scrob, db, *month, "--by", "artists", "--limit", "2")
    assert artists["top_artists"] == [{"artist": "Radiohead", "listens": 4},
                                      {"artist": "Blur", "listens": 3}]
    assert artists["top_albums"] == [] and artists["top_tracks"] == []
    assert artists["total_listens"] == 9  # totals do not depend on --by or --limit
    tracks = stats(scrob, db, *month, "--by", "tracks", "--limit", "1")
    assert tracks["top_tracks"] == [{"artist": "Blur", "track": "Song 2", "listens": 3}]
    assert tracks["top_artists"] == [] and tracks["top_albums"] == []
    albums = stats(scrob, db, *month, "--by", "albums")
    assert [a["album"] for a in albums["top_albums"]] == ["In Rainbows", "Blur", "Mezzanine"]
    none = stats(scrob, db, *month, "--limit", "0")
    assert none["top_artists"] == none["top_albums"] == none["top_tracks"] == []
    assert none["unique_tracks"] == 5


def test_a_listen_seen_by_two_sources_counts_once(scrob, tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    with Archive(path) as archive:
        archive.save_records(LASTFM, [r("2024-05-10T10:00:00", "Radiohead", "Reckoner")])
        archive.save_records(LB, [r("2024-05-10T10:01:30", "RADIOHEAD", "Reckoner")])
        archive.save_records(Account("import", "x"), [r("2024-05-10T09:59:00", "Radiohead",
                                                        "reckoner")])
    for args in (["--range", "all"], ["--month", "2024-05", "--tz", "UTC"]):
        got = stats(scrob, str(path), *args)
        assert got["total_listens"] == 1
        assert got["top_artists"] == [{"artist": "Radiohead", "listens": 1}]
        assert got["top_tracks"] == [{"artist": "Radiohead", "track": "Reckoner", "listens": 1}]


def test_whole_history_path_agrees_with_windowed_path(db: str) -> None:
    with Archive(db) as archive:
        whole = compute_stats(archive, 0, 2**40, limit=50)
        assert whole.total_listens == 10
        # an older listen outside the next window forces the windowed (GROUP BY) path
        archive.save_records(Account("import", "ancient"), [
            SourceRecord(1_000, "Zz Old", "Gramophone", album="Shellac")])
        windowed = compute_stats(archive, 2_000, 2**40, limit=50)
        whole_after = compute_stats(archive, 0, 2**40, limit=50)
    data, expected = windowed.as_json(), whole.as_json()
    del data["from"], expected["from"]
    assert data == expected
    assert whole_after.total_listens == 11
    assert whole_after.top_artists[-1].artist == "Zz Old"


def test_ties_at_the_cut_go_by_name_however_many_there_are(tmp_path: Path) -> None:
    # 6,000 artists and tracks heard once each, the alphabetically first one last: a
    # window's top list must not depend on the order the listens were scanned in.
    with Archive(tmp_path / "ties.db") as archive:
        archive.save_records(Account("import", "x"), [
            SourceRecord(1_000 + i, f"Z{i:04}", f"Song {i:04}") for i in range(6_000)])
        archive.save_records(Account("import", "x"), [SourceRecord(9_000, "Aaa", "Zed")])
        window = compute_stats(archive, 1_001, 10_000, limit=3)
        whole = compute_stats(archive, 0, 10_000, limit=3)
    assert [a.artist for a in window.top_artists] == ["Aaa", "Z0001", "Z0002"]
    assert [a.artist for a in whole.top_artists] == ["Aaa", "Z0000", "Z0001"]
    # a track's key starts with its artist's
    assert [(t.artist, t.track) for t in window.top_tracks] == [
        ("Aaa", "Zed"), ("Z0001", "Song 0001"), ("Z0002", "Song 0002")]
    assert window.total_listens == 6_000 and window.unique_artists == 6_000


def test_json_shape_is_exactly_the_contract(scrob, db: str) -> None:
    got = stats(scrob, db, "--range", "all")
    assert list(got) == ["from", "to", "total_listens", "unique_artists", "unique_tracks",
                         "top_artists", "top_albums", "top_tracks"]
    for key in ("from", "to", "total_listens", "unique_artists", "unique_tracks"):
        assert type(got[key]) is int, key
    shapes = {"top_artists": {"artist": str, "listens": int},
              "top_albums": {"artist": str, "album": str, "listens": int},
              "top_tracks": {"artist": str, "track": str, "listens": int}}
    for key, shape in shapes.items():
        assert got[key], key
        for item in got[key]:
            assert set(item) == set(shape), key
            assert all(type(item[k]) is t for k, t in shape.items()), item


def test_empty_archive_gives_zeros(scrob, tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    Archive(path).close()
    for args in (["--range", "all"], [], ["--year", "2024", "--tz", "UTC"]):
        got = stats(scrob, str(path), *args)
        assert got["total_listens"] == got["unique_artists"] == got["unique_tracks"] == 0
        assert got["top_artists"] == got["top_albums"] == got["top_tracks"] == []
    table = scrob("--db", str(path), "stats")
    assert table.code == 0
    totals = next(line for line in table.out.splitlines() if "│" in line)
    assert [cell.strip() for cell in totals.split("│")[:3]] == ["0", "0", "0"]


def test_table_output(scrob, db: str) -> None:
    result = scrob("--db", db, "stats", "--month", "2024-05", "--tz", "UTC")
    assert result.code == 0
    assert result.err == ""
    for text in ("Top artists", "Top albums", "Top tracks", "Radiohead", "In Rainbows",
                 "Song 2", "2024-05-01 00:00 to 2024-06-01 00:00"):
        assert text in result.out, text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--month", "2024-13"], "2024-13"),
        (["--month", "May"], "May"),
        (["--tz", "Mars/Olympus_Mons"], "Mars/Olympus_Mons"),
        (["--range", "fortnight"], "fortnight"),
        (["--by", "genres"], "genres"),
        (["--from", "yesterday"], "yesterday"),
        (["--from", "2024-06-01", "--to", "2024-05-01"], "--to"),
        (["--limit", "-1"], "--limit"),
        (["--to", "1970-01-01", "--tz", "UTC"], "--to must be after 1970-01-01"),
    ],
)
def test_bad_values_are_usage_errors(scrob, db: str, args: list[str], needle: str) -> None:
    result = scrob("--db", db, "stats", "--json", *args)
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1 and needle in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "args",
    [
        ["--year", "2024", "--month", "2024-05"],
        ["--range", "week", "--year", "2024"],
        ["--range", "week", "--from", "2024-01-01"],
        ["--month", "2024-05", "--to", "2024-06-01"],
    ],
)
def test_conflicting_periods_exit_2(scrob, db: str, args: list[str]) -> None:
    result = scrob("--db", db, "stats", "--json", *args)
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert "cannot be combined" in result.err


@pytest.mark.parametrize("args", [["--from", "1970-01-01"], ["--year", "1970"],
                                  ["--month", "1970-01"]])
def test_1970_east_of_utc_starts_at_the_epoch(scrob, db: str, args: list[str]) -> None:
    # Midnight of 1 January 1970 in Berlin is an hour before the epoch
    got = stats(scrob, db, *args, "--tz", "Europe/Berlin")
    assert got["from"] == 0
    assert got["total_listens"] == (10 if args[0] == "--from" else 0)
    early = scrob("--db", db, "stats", "--json", "--from", "1969-12-31", "--tz", "UTC")
    assert early.code == 2 and "1970" in early.err


def test_the_far_edges_of_what_is_accepted_are_shown_not_crashed_on(scrob, db: str) -> None:
    # the last second scrob takes, in a zone where it is already the year 10000
    late = scrob("--db", db, "stats", "--to", "253402300799", "--tz", "Pacific/Kiritimati")
    assert late.code == 0, late.err
    assert "everything to 9999-12-31 23:59 UTC" in late.out
    # a --limit past SQLite's integers: every name
    every = stats(scrob, db, "--range", "all", "--limit", "99999999999999999999")
    assert len(every["top_tracks"]) == every["unique_tracks"] > 1
