"""`scrob import`: scrob's own NDJSON and ListenBrainz exports into the archive."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.importers import import_file, parse_scrob, parse_scrob_line, scrob_tracks
from scrobbler_cli.models import Account, SourceRecord

IMPORT = Path(__file__).resolve().parent / "fixtures" / "import"
SCROB_NDJSON = IMPORT / "scrob_listens.ndjson"
LB_EXPORT = IMPORT / "lb_export.jsonl"
LB_API = IMPORT / "lb_api_listens.json"


def db(tmp_path: Path, name: str = "archive.db") -> str:
    return str(tmp_path / name)


def export_zip(tmp_path: Path, user: str = "alice") -> Path:
    """A ListenBrainz listening-history export as the site builds it."""
    lines = LB_EXPORT.read_text(encoding="utf-8").splitlines()
    path = tmp_path / f"listenbrainz_{user}_1700000000.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("user.json", json.dumps({"user_id": 42, "username": user}))
        # months are not zero-padded; the later month must sort after the earlier one
        z.writestr("listens/2021/4.jsonl", "\n".join(lines[:2]) + "\n")
        z.writestr("listens/2021/10.jsonl", "")
        z.writestr("listens/2020/12.jsonl", lines[2] + "\n")
        z.writestr("feedback.jsonl", '{"feedback": "ignored"}\n')
        z.writestr("pinned_recording.jsonl", "")
    return path


# -- scrob NDJSON -----------------------------------------------------------------------


def test_scrob_ndjson_round_trip_is_byte_identical(scrob, tmp_path: Path) -> None:
    original = SCROB_NDJSON.read_text(encoding="utf-8")
    first = scrob("--db", db(tmp_path, "one.db"), "import", str(SCROB_NDJSON))
    assert first.code == 0, first.err
    out1 = scrob("--db", db(tmp_path, "one.db"), "listens", "--json")
    assert out1.code == 0
    assert out1.out == original
    # and once more, from what the first archive printed, into a fresh archive
    exported = tmp_path / "export.ndjson"
    exported.write_text(out1.out, encoding="utf-8")
    assert scrob("--db", db(tmp_path, "two.db"), "import", str(exported)).code == 0
    out2 = scrob("--db", db(tmp_path, "two.db"), "listens", "--json")
    assert out2.out == out1.out


def test_an_archive_round_trips_through_a_pipe(scrob_proc: Any, tmp_path: Path) -> None:
    """``scrob listens --json | scrob import -``: standard input (or a pipe given as
    a path) is read as a file would be."""
    one, two = db(tmp_path, "one.db"), db(tmp_path, "two.db")
    from_file = scrob_proc("--db", one, "import", "--json", str(SCROB_NDJSON))
    assert from_file.code == 0
    printed = scrob_proc("--db", one, "listens", "--json").out
    piped = scrob_proc("--db", two, "import", "-", "--json", input=printed)
    assert piped.code == 0, piped.err
    assert piped.json() == {**from_file.json(), "path": "-"}
    assert scrob_proc("--db", two, "listens", "--json").out == printed
    again = scrob_proc("--db", two, "import", "/dev/stdin", "--json", input=printed)
    assert again.code == 0, again.err
    assert (again.json()["new"], again.json()["merged"]) == (0, 0)  # all there already
    assert scrob_proc("--db", two, "listens", "--json").out == printed
    # a bad line is named as a line of standard input; nothing is left behind
    bad = scrob_proc("--db", two, "import", "-", input='{"listened_at": 5, "artist": "A", '
                                                       '"track": "T"}\nnot json\n')
    assert bad.code == 6
    assert "stdin:2: skipped: not valid JSON" in bad.err
    assert "1 invalid record in standard input was skipped" in bad.err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("scrob-import-")]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs named pipes")
def test_import_file_reads_a_pipe_whole(tmp_path: Path) -> None:
    """The format is told from a file's first bytes, read again from the start: a pipe
    cannot be read twice, so ``import_file`` reads it through a copy."""
    import os
    import threading

    fifo = tmp_path / "listens.fifo"
    os.mkfifo(fifo)
    lines = "".join(json.dumps({"listened_at": 1_600_000_000 + i * 60, "artist": f"A{i}",
                                "track": "T" * 80}) + "\n" for i in range(300))

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as out:
            out.write(lines)

    writer = threading.Thread(target=feed)
    writer.start()
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, fifo)
        assert (report.path, report.records, report.new, report.invalid) == (
            str(fifo), 300, 300, 0)
        assert {a["account"] for a in archive.accounts()} == {"pipe"}
    writer.join()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("scrob-import-")]


def test_a_terminal_is_not_read_as_a_file_to_import(scrob, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    result = scrob("--db", db(tmp_path), "import", "-")
    assert result.code == 2
    assert "standard input, which is a terminal" in result.err
    assert not Path(db(tmp_path)).exists()


def test_scrob_ndjson_keeps_accounts_and_counts_each_listen_once(tmp_path: Path) -> None:
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, SCROB_NDJSON)
        assert report.format == "scrob"
        assert (report.records, report.invalid) == (10, 0)
        assert archive.count() == 10
        merged = [x for x in archive.listens() if len(x.accounts) == 2]
        assert {(x.artist, x.listened_at) for x in merged} == {
            ("Beyonc\u00e9", 1714600000), ("\u5742\u672c\u9f8d\u4e00", 1714603600)}
        assert {a["service"] for a in archive.accounts()} == {"import", "lastfm",
                                                              "listenbrainz"}


def test_importing_the_same_file_twice_adds_nothing(tmp_path: Path) -> None:
    with Archive(db(tmp_path)) as archive:
        first = import_file(archive, SCROB_NDJSON)
        second = import_file(archive, SCROB_NDJSON)
        assert first.new == 10
        assert (second.records, second.new, second.merged) == (10, 0, 0)
        assert second.duplicates == 12  # one per account a listen lists
        assert (first.sightings, second.sightings) == (12, 12)
        assert second.as_json()["sightings"] == 12
        assert archive.count() == 10


def test_the_import_summary_says_its_counts_are_of_sightings(scrob, tmp_path: Path) -> None:
    """Two of the fixture's ten records name two accounts: the summary's counts add up
    to twelve, and it says why; a file of one account's records says nothing of it."""
    first = scrob("--db", db(tmp_path), "import", str(SCROB_NDJSON))
    again = scrob("--db", db(tmp_path), "import", str(SCROB_NDJSON))
    assert "10 records read from scrob_listens.ndjson (scrob), 12 sightings by the " \
           "accounts they name: 10 new listens, 2 matched" in first.err
    assert "12 sightings by the accounts they name: 0 new listens" in again.err
    assert "12 already imported" in again.err
    single = tmp_path / "one.ndjson"
    single.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    plain = scrob("--db", db(tmp_path), "import", str(single))
    assert "1 record read from one.ndjson (scrob): 1 new listen," in plain.err
    assert "sighting" not in plain.err


def test_cli_import_twice_reports_and_adds_nothing(scrob, tmp_path: Path) -> None:
    assert scrob("import", str(LB_EXPORT)).code == 0
    again = scrob("import", "--json", str(LB_EXPORT))
    assert again.code == 0
    assert again.json() == {"path": str(LB_EXPORT), "format": "listenbrainz", "records": 3,
                            "sightings": 3, "new": 0, "merged": 0, "duplicates": 3,
                            "invalid": 0}
    assert len(scrob("listens", "--json").ndjson()) == 3


def test_scrob_line_without_accounts_belongs_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "my history.ndjson"
    path.write_text('{"listened_at": 1000.9, "artist": "A", "track": "B"}\n')
    with Archive(db(tmp_path)) as archive:
        import_file(archive, path)
        [listen] = archive.listens()
        assert listen.listened_at == 1000
        assert listen.accounts == ("import:my history.ndjson",)


def test_parse_scrob_reasons() -> None:
    record, accounts = parse_scrob({"listened_at": 5, "artist": "A", "track": "B",
                                    "album": "", "accounts": ["lastfm:x"]})
    assert (record.listened_at, record.album, accounts) == (5, None, ("lastfm:x",))
    for bad, reason in [
        ({"artist": "A", "track": "B"}, "listened_at"),
        ({"listened_at": "5", "artist": "A", "track": "B"}, "listened_at"),
        ({"listened_at": True, "artist": "A", "track": "B"}, "listened_at"),
        ({"listened_at": 5, "track": "B"}, "artist"),
        ({"listened_at": 5, "artist": "A", "track": " "}, "track"),
        ({"listened_at": 5, "artist": "A", "track": "B", "duration": 1.5}, "duration"),
        ({"listened_at": 5, "artist": "A", "track": "B", "accounts": "lastfm:x"}, "accounts"),
        ({"listened_at": 5, "artist": "A", "track": "B", "album": 3}, "album"),
        ([1, 2], "object"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_scrob(bad)


def test_bad_scrob_lines_are_reported_and_valid_ones_kept(scrob) -> None:
    path = IMPORT / "scrob_bad_lines.ndjson"
    result = scrob("import", str(path))
    assert result.code == 6
    assert result.out == ""
    name = path.name
    problems = [line for line in result.err.splitlines() if ": skipped: " in line]
    expected = {2: "not valid JSON", 3: "artist", 4: "listened_at", 6: "not a JSON object",
                7: "accounts", 8: "duration", 9: "listened_at", 10: "track"}
    assert len(problems) == len(expected)
    for line_no, reason in expected.items():
        assert any(f"{name}:{line_no}: " in p and reason in p for p in problems), line_no
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("scrob: error: 8 invalid records")
    assert "Traceback" not in result.err
    kept = scrob("listens", "--json", "--reverse").ndjson()
    assert [(x["track"], x["accounts"]) for x in kept] == [  # type: ignore[index]
        ("Reckoner", ["lastfm:alice"]),
        ("Weird Fishes", [f"import:{name}"]),
    ]


def test_bad_lines_json_summary_is_still_valid_json(scrob) -> None:
    result = scrob("import", "--json", str(IMPORT / "scrob_bad_lines.ndjson"))
    assert result.code == 6
    assert result.json()["invalid"] == 8  # type: ignore[index]
    assert result.json()["new"] == 2  # type: ignore[index]


# -- ListenBrainz ----------------------------------------------------------------------


def test_listenbrainz_export_zip(tmp_path: Path) -> None:
    path = export_zip(tmp_path)
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, path)
        assert (report.format, report.records, report.new, report.invalid) == (
            "listenbrainz", 3, 3, 0)
        rows = list(archive.listens())
        # fractional listened_at is truncated to whole seconds
        assert [x.listened_at for x in rows] == [1617235200, 1617235500, 1619819999]
        assert {x.accounts for x in rows} == {("listenbrainz:alice",)}
        golden, mamas, roygbiv = rows
        assert (golden.artist, golden.track, golden.album) == (
            "The Stranglers", "Golden Brown", "La Folie")
        assert golden.duration == 206  # from duration_ms
        assert golden.recording_mbid is None  # mbid_mapping null
        assert mamas.track == "California Dreamin\u2019"
        assert mamas.recording_mbid == "f4a5b6c7-d8e9-4f0a-9b1c-2d3e4f5a6b7c"
        assert mamas.artist_mbids == ("0ab49580-c84f-44d4-875f-d83760ea2cfe",)
        assert mamas.duration == 162
        assert roygbiv.album is None
        # the service's own id and the raw record are kept
        msids = dict(archive.conn.execute("SELECT listened_at, remote_id FROM sources"))
        assert msids[1617235200] == "03dcc65c-0e01-4f25-aa1f-0f469d10e2ad"
        raw = archive.conn.execute(
            "SELECT raw FROM sources WHERE listened_at = 1617235200").fetchone()[0]
        assert json.loads(raw)["inserted_at"] == 1617235299.512345
        assert json.loads(raw)["track_metadata"]["mbid_mapping"] is None


def test_listenbrainz_export_joins_the_accounts_listens(tmp_path: Path) -> None:
    """An export of an account already synced adds nothing: its records are duplicates."""
    with Archive(db(tmp_path)) as archive:
        import_file(archive, LB_API)  # the API listens of listenbrainz:alice
        report = import_file(archive, export_zip(tmp_path))
        assert (report.new, report.duplicates) == (0, 3)
        assert archive.count() == 3


def test_listenbrainz_single_jsonl(tmp_path: Path) -> None:
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, LB_EXPORT)
        assert (report.format, report.new) == ("listenbrainz", 3)
        assert {x.accounts for x in archive.listens()} == {("import:lb_export.jsonl",)}


def test_listenbrainz_json_list_with_user_names(tmp_path: Path) -> None:
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, LB_API)
        assert (report.format, report.records, report.new) == ("listenbrainz", 3, 3)
        assert {x.accounts for x in archive.listens()} == {("listenbrainz:alice",)}
        assert archive.conn.execute(
            "SELECT count(*) FROM sources WHERE remote_id IS NOT NULL").fetchone()[0] == 3


@pytest.mark.parametrize("indent", [2, None])  # as saved by a browser: all on one line
def test_listenbrainz_api_reply_document(tmp_path: Path, indent: int | None) -> None:
    path = tmp_path / "reply.json"
    listens = json.loads(LB_API.read_text(encoding="utf-8"))
    path.write_text(json.dumps({"payload": {"count": 3, "listens": listens}}, indent=indent))
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, path)
        assert (report.format, report.new, report.invalid) == ("listenbrainz", 3, 0)


def test_bad_listenbrainz_lines_are_reported_with_file_and_line(scrob) -> None:
    path = IMPORT / "lb_bad_lines.jsonl"
    result = scrob("import", str(path))
    assert result.code == 6
    problems = [line for line in result.err.splitlines() if ": skipped: " in line]
    assert [p.split(": skipped: ")[0] for p in problems] == [
        f"scrob: {path.name}:{n}" for n in (2, 3, 4, 5, 6)]
    assert "artist_name" in problems[0]
    assert "listened_at" in problems[1] and "listened_at" in problems[2]
    assert "track_metadata" in problems[3]
    assert "not valid JSON" in problems[4]
    assert [x["track"] for x in scrob("listens", "--json", "--reverse").ndjson()] == [  # type: ignore[index]
        "Golden Brown", "Roygbiv"]


# -- files that cannot be read ------------------------------------------------------------


def test_corrupt_zip_exits_6_with_one_clear_line(scrob, tmp_path: Path) -> None:
    good = export_zip(tmp_path).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good[: len(good) // 2])
    result = scrob("import", str(truncated))
    assert result.code == 6
    assert result.err.count("\n") == 1 and result.err.startswith("scrob: error: ")
    assert "truncated.zip" in result.err and "zip" in result.err.split("truncated.zip", 1)[1]
    assert "Traceback" not in result.err


def test_zip_with_damaged_member_exits_6(scrob, tmp_path: Path) -> None:
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("listens/2021/4.jsonl", LB_EXPORT.read_text(encoding="utf-8"))
    data = bytearray(path.read_bytes())
    at = data.index(b"Golden Brown")
    data[at:at + 6] = b"Silver"  # the stored CRC no longer matches
    path.write_bytes(bytes(data))
    result = scrob("import", str(path))
    assert result.code == 6
    assert "damaged.zip" in result.err
    assert "internal error" not in result.err and "Traceback" not in result.err


def test_zip_without_listens_exits_6(scrob, tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("holiday.jpg", b"\xff\xd8\xff")
    result = scrob("import", str(path))
    assert result.code == 6
    assert "no listens" in result.err


def test_binary_file_exits_6(scrob, tmp_path: Path) -> None:
    path = tmp_path / "music.mp3"
    path.write_bytes(b"ID3\x03\x00\x00\x00\xff\xfe\xfa" * 20)
    result = scrob("import", str(path))
    assert result.code == 6
    assert result.err.count("\n") == 1 and "music.mp3" in result.err


def test_missing_file_is_a_usage_error(scrob, tmp_path: Path) -> None:
    result = scrob("import", str(tmp_path / "nope.jsonl"))
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "nope.jsonl" in result.err and "Traceback" not in result.err


def test_unknown_format_is_a_usage_error(scrob) -> None:
    result = scrob("import", "--format", "csv", str(SCROB_NDJSON))
    assert result.code == 2
    assert "csv" in result.err


def test_forced_format(tmp_path: Path) -> None:
    with Archive(db(tmp_path)) as archive:
        # read as scrob NDJSON, ListenBrainz lines are all invalid
        report = import_file(archive, LB_EXPORT, fmt="scrob")
        assert (report.records, report.invalid) == (0, 3)
        assert import_file(archive, LB_EXPORT, fmt="listenbrainz").new == 3


def test_empty_file_imports_nothing(scrob, tmp_path: Path) -> None:
    path = tmp_path / "empty.ndjson"
    path.write_text("\n\n")
    result = scrob("import", "--json", str(path))
    assert result.code == 0
    assert result.json()["records"] == 0  # type: ignore[index]


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    """Editors on Windows start UTF-8 files with a BOM."""
    ndjson = tmp_path / "bom.ndjson"
    ndjson.write_bytes(b"\xef\xbb\xbf" + SCROB_NDJSON.read_bytes())
    listens = tmp_path / "bom.json"
    listens.write_bytes(b"\xef\xbb\xbf" + LB_API.read_bytes())
    with Archive(db(tmp_path)) as archive:
        assert (import_file(archive, ndjson).invalid, archive.count()) == (0, 10)
        report = import_file(archive, listens)
        assert (report.format, report.records, report.invalid) == ("listenbrainz", 3, 0)


def test_a_line_that_is_not_utf8_is_skipped_with_its_number(tmp_path: Path) -> None:
    lines = SCROB_NDJSON.read_bytes().splitlines(keepends=True)
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"".join(lines[:4]) + lines[4].replace(b'"track"', b'"tr\xffack"')
                     + b"".join(lines[5:]))
    problems: list[tuple[str, str]] = []
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, path, on_problem=lambda *p: problems.append(p))
        assert (report.invalid, archive.count()) == (1, 9)  # the lines after it kept
    assert problems[0][0] == "mixed.ndjson:5" and "UTF-8" in problems[0][1]


@pytest.mark.parametrize("name", ["latin1.ndjson", "latin1.jsonl"])
def test_a_first_line_that_is_not_utf8_is_one_bad_line_not_a_bad_file(
        scrob, tmp_path: Path, name: str) -> None:
    """A Latin-1 name on line 1 is skipped as it is on line 2; only a first line that
    does not even start as JSON does (a binary file: see test_binary_file_exits_6)."""
    path = tmp_path / name
    if name.endswith(".ndjson"):
        bad = b'{"listened_at":1700000000,"artist":"Caf\xe9","track":"T"}'
        good = b'{"listened_at":1700000100,"artist":"B","track":"T"}'
    else:
        bad = (b'{"listened_at":1700000000,"track_metadata":{"artist_name":"Caf\xe9",'
               b'"track_name":"T"}}')
        good = (b'{"listened_at":1700000100,"track_metadata":{"artist_name":"B",'
                b'"track_name":"T"}}')
    path.write_bytes(bad + b"\n" + good + b"\n")
    result = scrob("import", str(path))
    assert result.code == 6
    assert f"{name}:1: skipped: not UTF-8 text (byte " in result.err
    assert "surrogates" not in result.err and "the valid ones were imported" in result.err
    assert [r["artist"] for r in scrob("listens", "--json").ndjson()] == ["B"]  # type: ignore[index]


def test_a_file_with_no_valid_record_says_nothing_was_imported(scrob, tmp_path: Path
                                                               ) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text('{"listened_at": "x", "artist": "A", "track": "T"}\n', encoding="utf-8")
    result = scrob("import", str(path))
    assert result.code == 6
    assert "none was valid, nothing was imported" in result.err
    assert "the valid ones" not in result.err


def test_format_scrob_refuses_a_zip(scrob, tmp_path: Path) -> None:
    path = export_zip(tmp_path)
    result = scrob("import", "--format", "scrob", str(path))
    assert result.code == 2 and result.err.count("\n") == 1
    assert "zip" in result.err and "--format listenbrainz" in result.err
    assert not Path(os.environ["SCROB_DB"]).exists()  # a usage error makes no archive
    assert scrob("import", "--format", "listenbrainz", str(path)).code == 0


def test_json_suffix_with_one_listen_per_line(tmp_path: Path) -> None:
    path = tmp_path / "listens.json"
    path.write_text(LB_EXPORT.read_text(encoding="utf-8"), encoding="utf-8")
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, path)
        assert (report.format, report.new, report.invalid) == ("listenbrainz", 3, 0)


def test_round_trip_keeps_two_listens_of_one_account_at_one_second(scrob, tmp_path: Path
                                                                   ) -> None:
    """Records that arrived over several syncs pair as one import batch pairs them: a
    late record near a pair has its run of plays matched again (archive/rematch.py)."""
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1714600000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lastfm, [SourceRecord(t, "A", "S")])
        archive.save_records(lb, [SourceRecord(t - 100, "A", "S")])  # joins the Last.fm play
        archive.save_records(lb, [SourceRecord(t, "A", "S")])  # nearer it: takes the match
        assert archive.count() == 2
        [alone] = [x for x in archive.listens() if len(x.accounts) == 1]
        assert (alone.listened_at, alone.accounts) == (t - 100, ("listenbrainz:alice",))
    out1 = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    exported = tmp_path / "export.ndjson"
    exported.write_text(out1, encoding="utf-8")
    scrob("--db", db(tmp_path, "two.db"), "import", str(exported))
    assert scrob("--db", db(tmp_path, "two.db"), "listens", "--json").out == out1


def test_implausible_timestamps_are_invalid_records_not_crashes(tmp_path, scrob) -> None:
    path = tmp_path / "ms.ndjson"
    path.write_text(
        '{"listened_at": 1700000000000, "artist": "A", "track": "ms"}\n'
        '{"listened_at": 1e300, "artist": "A", "track": "huge"}\n'
        '{"listened_at": -5, "artist": "A", "track": "negative"}\n'
        '{"listened_at": 1700000000, "artist": "A", "track": "fine"}\n', encoding="utf-8")
    result = scrob("import", str(path))
    assert result.code == 6
    assert "ms.ndjson:1" in result.err and "milliseconds" in result.err
    assert "ms.ndjson:2" in result.err and "ms.ndjson:3" in result.err
    listed = scrob("listens", "--json").ndjson()
    assert [row["track"] for row in listed] == ["fine"]  # the valid one was kept
    assert scrob("listens").code == 0


def test_listenbrainz_export_user_names_the_synced_account(tmp_path) -> None:
    import json as _json
    import zipfile

    from scrobbler_cli.archive import Archive
    from scrobbler_cli.importers import import_file

    path = tmp_path / "listenbrainz_Alice.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("user.json", _json.dumps({"user_id": 1, "username": "Alice"}))
        zf.writestr("listens/2023/11.jsonl", _json.dumps({
            "listened_at": 1700000000, "user_name": "Alice",
            "track_metadata": {"artist_name": "A", "track_name": "T"}}) + "\n")
    with Archive(tmp_path / "a.db") as archive:
        import_file(archive, path)
        assert [a["account"] for a in archive.accounts()] == ["alice"]


def test_restore_then_sync_adds_no_duplicate_of_an_offset_sighting(scrob, tmp_path: Path
                                                                   ) -> None:
    """Backup and restore keep each account's own time, so a later sync of that account
    finds its records again instead of adding the play twice."""
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1714600000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lastfm, [SourceRecord(t, "A", "S")])
        archive.save_records(lb, [SourceRecord(t + 90, "A", "S")])  # the same play, 90 s on
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    assert '"account_times":{"listenbrainz:alice":1714600090}' in out
    backup = tmp_path / "backup.ndjson"
    backup.write_text(out, encoding="utf-8")
    assert scrob("--db", db(tmp_path, "two.db"), "import", str(backup)).code == 0
    with Archive(db(tmp_path, "two.db")) as archive:
        again = archive.save_records(lb, [SourceRecord(t + 90, "A", "S")])  # a re-sync
        assert (again.duplicates, again.new, archive.count()) == (1, 0, 1)


@pytest.mark.parametrize("batch", [None, 2])
def test_round_trip_keeps_which_account_saw_a_merged_listen_first(
        scrob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int | None) -> None:
    """A listen's time is its first sighting's. When ListenBrainz saw a play first and
    Last.fm later (its record 90 s earlier), the backup lists lastfm first; restoring it
    must still make the ListenBrainz record the listen and Last.fm's the later sighting,
    or every such listen comes back 90 s earlier. (Batches of 2: the later sightings
    fill theirs first.)"""
    import scrobbler_cli.importers as importers

    if batch:
        monkeypatch.setattr(importers, "BATCH", batch)
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1714600000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lb, [SourceRecord(t + i * 600 + 90, "A", f"S{i}")
                                  for i in range(5)])
        archive.save_records(lastfm, [SourceRecord(t + i * 600, "A", f"S{i}")
                                      for i in range(5)]
                             + [SourceRecord(t + 9000, "A", "only on Last.fm")])
        archive.save_records(lb, [SourceRecord(t - 9000, "A", "only on ListenBrainz")])
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    assert f'"listened_at":{t + 90},' in out
    assert '"account_times":{"lastfm:alice":1714600000}' in out
    backup = tmp_path / "backup.ndjson"
    backup.write_text(out, encoding="utf-8")
    restored = scrob("--db", db(tmp_path, "two.db"), "import", str(backup))
    assert restored.code == 0, restored.err
    assert scrob("--db", db(tmp_path, "two.db"), "listens", "--json").out == out
    with Archive(db(tmp_path, "two.db")) as archive:  # each account finds its own again
        assert archive.save_records(lb, [SourceRecord(t + 90, "A", "S0")]).duplicates == 1
        assert archive.save_records(lastfm, [SourceRecord(t, "A", "S0")]).duplicates == 1
        assert archive.count() == 7


def test_an_import_stopped_part_way_then_run_again_ends_as_one_run(
        scrob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ListenBrainz saw each play first, Last.fm 7 s earlier: the backup names lastfm
    first in each line, so Last.fm's records are saved first and the first sightings
    put back at the end. An import stopped before that end, run again, still does."""
    import scrobbler_cli.importers as importers

    monkeypatch.setattr(importers, "BATCH", 4)
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1714600000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lb, [SourceRecord(t + i * 600, "A", f"S{i}") for i in range(12)])
        archive.save_records(lastfm, [SourceRecord(t + i * 600 - 7, "A", f"S{i}")
                                      for i in range(12)])
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    assert '"account_times":{"lastfm:alice":1714599993}' in out
    backup = tmp_path / "backup.ndjson"
    lines = out.splitlines(keepends=True)
    backup.write_text("".join(lines[:6] + ["not json\n"] + lines[6:]), encoding="utf-8")

    def stop(where: str, reason: str) -> None:  # Ctrl-C as the seventh line is read
        raise KeyboardInterrupt

    with Archive(db(tmp_path, "two.db")) as archive:
        with pytest.raises(KeyboardInterrupt):
            import_file(archive, backup, on_problem=stop)
        assert 0 < archive.count() < 12  # some batches were saved, and no first sighting
        assert archive.note(importers.IMPORT_NOTE) is not None
    assert scrob("--db", db(tmp_path, "two.db"), "import", str(backup)).code == 6
    assert scrob("--db", db(tmp_path, "two.db"), "listens", "--json").out == out
    with Archive(db(tmp_path, "two.db")) as archive:  # the import ended: nothing kept
        assert archive.note(importers.IMPORT_NOTE) is None


@pytest.mark.parametrize("between", ["sync", "import"])
def test_a_stopped_import_run_again_after_other_saves_matches_their_listens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, between: str) -> None:
    """An import of Last.fm's plays stops after its first batch; ListenBrainz's records
    of the same plays are then saved (by a sync, or by importing another file). Run
    again, the stopped import must match its records with those listens: what it keeps
    in ``meta`` for a run again is for itself, and anything else that saves listens ends
    it (else its matching stayed limited to the listens from before it began, and every
    play was counted twice)."""
    import scrobbler_cli.importers as importers

    monkeypatch.setattr(importers, "BATCH", 10)
    t = 1_700_000_000
    plays = [(t + i * 600, f"S{i}") for i in range(30)]
    lastfm = tmp_path / "lastfm.ndjson"
    lastfm.write_text("".join(json.dumps({"listened_at": at, "artist": "A", "track": s,
                                          "accounts": ["lastfm:alice"]}) + "\n"
                              for at, s in plays), encoding="utf-8")
    lb = tmp_path / "lb.ndjson"
    lb.write_text("".join(json.dumps({"listened_at": at + 40, "artist": "A", "track": s,
                                      "accounts": ["listenbrainz:alice"]}) + "\n"
                          for at, s in plays), encoding="utf-8")
    real = Archive.save_rows
    calls = iter(range(1, 100))

    def stops(self: Archive, *args: Any, **kwargs: Any) -> Any:
        if next(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with Archive(db(tmp_path)) as archive:
        monkeypatch.setattr(Archive, "save_rows", stops)
        with pytest.raises(KeyboardInterrupt):
            import_file(archive, lastfm)
        monkeypatch.setattr(Archive, "save_rows", real)
        assert archive.count() == 10
        if between == "sync":
            with archive.saver() as saver:
                saver.save(Account("listenbrainz", "alice"),
                           [SourceRecord(at + 40, "A", s) for at, s in plays])
        else:
            assert import_file(archive, lb).merged == 10
        report = import_file(archive, lastfm)
        assert (report.new, report.merged, report.duplicates) == (0, 20, 10)
        assert archive.count() == 30
        assert archive.note(importers.IMPORT_NOTE) is None


def test_a_lone_surrogate_in_a_json_document_is_one_invalid_record(scrob, tmp_path: Path
                                                                   ) -> None:
    path = tmp_path / "listens.json"
    path.write_text('[{"listened_at": 1700000000, "artist": "A\\ud800", "track": "S"},'
                    ' {"listened_at": 1700000001, "artist": "B", "track": "S"}]')
    result = scrob("import", str(path))
    assert result.code == 6 and "Traceback" not in result.err
    assert "listens.json[1]: skipped" in result.err and "surrogate" in result.err
    assert [r["artist"] for r in scrob("listens", "--json").ndjson()] == ["B"]


def test_account_times_must_be_plausible_times(scrob, tmp_path: Path) -> None:
    path = tmp_path / "times.ndjson"
    path.write_text(
        '{"listened_at": 1700000000, "artist": "A", "track": "far", "accounts": '
        '["lastfm:a", "listenbrainz:a"], "account_times": {"lastfm:a": 1099511627776}}\n'
        '{"listened_at": 1700000000, "artist": "A", "track": "ms", "accounts": '
        '["lastfm:a", "listenbrainz:a"], "account_times": {"lastfm:a": 1000000000000}}\n'
        '{"listened_at": 1700000000, "artist": "A", "track": "fine", "accounts": '
        '["lastfm:a", "listenbrainz:a"], "account_times": {"lastfm:a": 1700000030}}\n')
    result = scrob("import", str(path))
    assert result.code == 6
    assert "times.ndjson:1" in result.err and "times.ndjson:2" in result.err
    assert "account_times holds 1099511627776" in result.err
    assert [r["track"] for r in scrob("listens", "--json").ndjson()] == ["fine"]


@pytest.mark.parametrize("indent", [2, None])
def test_a_listenbrainz_reply_is_told_by_its_content_not_its_name(
        scrob_proc: Any, tmp_path: Path, indent: int | None) -> None:
    listens = json.loads(LB_API.read_text(encoding="utf-8"))
    reply = json.dumps({"payload": {"count": 3, "listens": listens}}, indent=indent)
    (tmp_path / "reply.JSON").write_text(reply)
    one = scrob_proc("--db", db(tmp_path, "one.db"), "import", str(tmp_path / "reply.JSON"),
                     "--json")
    piped = scrob_proc("--db", db(tmp_path, "two.db"), "import", "-", "--json", input=reply)
    for result in (one, piped):
        assert result.code == 0, result.err
        assert (result.json()["format"], result.json()["new"]) == ("listenbrainz", 3)


def test_lines_of_listens_whose_first_is_not_json_are_still_lines(scrob, tmp_path: Path
                                                                   ) -> None:
    path = tmp_path / "listens.json"
    path.write_text("{not json\n" + LB_EXPORT.read_text(encoding="utf-8"), encoding="utf-8")
    result = scrob("import", str(path), "--json")
    assert result.code == 6
    assert (result.json()["new"], result.json()["invalid"]) == (3, 1)


def test_csv_shows_a_duration_of_zero(scrob, tmp_path: Path) -> None:
    path = tmp_path / "zero.ndjson"
    path.write_text('{"listened_at": 1700000000, "artist": "A", "track": "S", "duration": 0}\n')
    assert scrob("import", str(path)).code == 0
    rows = scrob("listens", "--format", "csv").out.splitlines()
    assert rows[1].split(",")[:5] == ["1700000000", "A", "S", "", "0"]


def test_round_trip_pairs_each_sighting_as_the_archive_did(scrob, tmp_path: Path) -> None:
    """Last.fm's play at t was paired with ListenBrainz's at t+140, the nearest; the
    one at t+200 is a listen of its own. Restored, Last.fm's record must not join the
    listen at t+200 (it is newer, so listed first), nor lend it its album."""
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1700000000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lastfm, [SourceRecord(t, "A", "S", album="Alb")])
        archive.save_records(lb, [SourceRecord(t + 140, "a", "s"),
                                  SourceRecord(t + 200, "a", "s")])
        archive.save_records(lb, [SourceRecord(t + 5000, "B", "Z")])
        archive.save_records(lastfm, [SourceRecord(t + 5030, "B", "Z")])
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["listened_at"], r["album"], r.get("account_times")) for r in rows] == [
        (t + 5000, None, {"lastfm:alice": t + 5030}),
        (t + 200, None, None),
        (t, "Alb", {"listenbrainz:alice": t + 140})]
    backup = tmp_path / "backup.ndjson"
    backup.write_text(out, encoding="utf-8")
    assert scrob("--db", db(tmp_path, "two.db"), "import", str(backup)).code == 0
    assert scrob("--db", db(tmp_path, "two.db"), "listens", "--json").out == out
    # importing it again changes nothing
    assert scrob("--db", db(tmp_path, "two.db"), "import", str(backup)).code == 0
    assert scrob("--db", db(tmp_path, "two.db"), "listens", "--json").out == out


def test_a_backup_of_three_accounts_restores_each_play_as_it_was(scrob, tmp_path: Path
                                                                 ) -> None:
    """ListenBrainz's play at t+620 and the file's at t+432 are one listen; Last.fm's at
    t+241 (191 s from t+432, 379 s from t+620) is another. Restored, in whatever order
    the lines (and so the accounts' batches) come, Last.fm's record must not join the
    file's, which was saved apart from ListenBrainz's."""
    import itertools

    t = 1_700_000_000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(Account("listenbrainz", "alice"), [SourceRecord(t + 620, "A", "S")])
        archive.save_records(Account("lastfm", "alice"), [SourceRecord(t + 241, "A", "S")])
        archive.save_records(Account("import", "x"), [SourceRecord(t + 432, "A", "S")])
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    assert [(r["listened_at"], r["accounts"]) for r in map(json.loads, out.splitlines())] == [
        (t + 620, ["import:x", "listenbrainz:alice"]), (t + 241, ["lastfm:alice"])]
    lines = out.splitlines()
    lines.append(json.dumps({"listened_at": t + 5000, "artist": "B", "track": "Z",
                             "accounts": ["import:x"]}))  # the file's account first
    for n, order in enumerate(itertools.permutations(lines)):
        backup = tmp_path / f"backup{n}.ndjson"
        backup.write_text("\n".join(order) + "\n", encoding="utf-8")
        assert scrob("--db", db(tmp_path, f"r{n}.db"), "import", str(backup)).code == 0
        again = scrob("--db", db(tmp_path, f"r{n}.db"), "listens", "--json").out
        assert again.splitlines()[1:] == lines[:2], order


def test_a_record_of_another_track_restores_as_that_track(scrob, tmp_path: Path) -> None:
    """Last.fm's `A - S2` joined ListenBrainz's `B - S` by their recording MBID; Last.fm
    also has a play of `B - S` at the same second, a listen of its own. The backup names
    the first record's own track (`account_tracks`): restored as the listen's track, it
    was the second record again, and that listen was lost. Whichever line comes first."""
    import itertools

    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1700000000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lb, [SourceRecord(t, "B", "S", recording_mbid="m1")])
        archive.save_records(lastfm, [SourceRecord(t - 30, "A", "S2", recording_mbid="m1")])
        archive.save_records(lastfm, [SourceRecord(t - 30, "B", "S", album="X")])
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["listened_at"], r.get("account_tracks")) for r in rows] == [
        (t, {"lastfm:alice": {"artist": "A", "track": "S2"}}), (t - 30, None)]
    for n, order in enumerate(itertools.permutations(out.splitlines())):
        backup = tmp_path / f"backup{n}.ndjson"
        backup.write_text("\n".join(order) + "\n", encoding="utf-8")
        assert scrob("--db", db(tmp_path, f"r{n}.db"), "import", str(backup)).code == 0
        assert scrob("--db", db(tmp_path, f"r{n}.db"), "listens", "--json").out == out
        with Archive(db(tmp_path, f"r{n}.db"), readonly=True) as archive:
            assert archive.conn.execute("SELECT count(*) FROM listens").fetchone()[0] == 2


def test_a_backup_restored_onto_the_services_part_joins_its_listens(scrob, tmp_path: Path
                                                                   ) -> None:
    """The archive holds the services' records of the backup already: the file's record
    joins the listen its line-mate is on (Last.fm's at t+241), not the nearer one (
    ListenBrainz's at t+620, 188 s away), which it was never paired with."""
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1700000000
    with Archive(db(tmp_path, "one.db")) as archive:
        archive.save_records(lastfm, [SourceRecord(t + 241, "A", "S")])
        archive.save_records(Account("import", "x"), [SourceRecord(t + 432, "A", "S")])
        archive.save_records(lb, [SourceRecord(t + 620, "A", "S")])
    out = scrob("--db", db(tmp_path, "one.db"), "listens", "--json").out
    assert [r["accounts"] for r in map(json.loads, out.splitlines())] == [
        ["listenbrainz:alice"], ["import:x", "lastfm:alice"]]
    with Archive(db(tmp_path, "two.db")) as archive:
        archive.save_records(lastfm, [SourceRecord(t + 241, "A", "S")])
        archive.save_records(lb, [SourceRecord(t + 620, "A", "S")])
    backup = tmp_path / "backup.ndjson"
    backup.write_text(out, encoding="utf-8")
    report = scrob("--db", db(tmp_path, "two.db"), "import", "--json", str(backup)).json()
    assert (report["new"], report["merged"], report["duplicates"]) == (0, 1, 2)
    assert scrob("--db", db(tmp_path, "two.db"), "listens", "--json").out == out


def test_make_first_changes_only_the_listens_numbered_above_after(tmp_path: Path) -> None:
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1700000000
    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(lastfm, [SourceRecord(t, "A", "S")])
        archive.save_records(lb, [SourceRecord(t + 60, "A", "S")])
        before = archive.last_id()
        archive.save_records(lastfm, [SourceRecord(t + 9000, "A", "S")])
        archive.save_records(lb, [SourceRecord(t + 9060, "A", "S")])
        wanted = [(lb, t + 60, "A", "S"), (lb, t + 9060, "a", " s"),
                  (lb, t + 1, "A", "S"), (Account("lastfm", "bob"), t, "A", "S")]
        assert archive.make_first(wanted, after=before) == 1
        assert archive.make_first(wanted, after=before) == 0  # already first
        assert sorted((listen.listened_at, listen.accounts)
                      for listen in archive.listens()) == [
            (t, ("lastfm:alice", "listenbrainz:alice")),
            (t + 9060, ("lastfm:alice", "listenbrainz:alice"))]
        # each account still finds its own record: nothing is saved twice
        again = archive.save_records(lb, [SourceRecord(t + 9060, "A", "S")])
        assert (again.duplicates, archive.count()) == (1, 2)
        assert archive.save_records(lastfm, [SourceRecord(t + 9000, "A", "S")]).duplicates == 1


# Lines of every shape parse_scrob reads or refuses: the fast line parser must read each
# as parse_scrob does, or leave it to parse_scrob (None), and never accept one it refuses.
_T = b'"listened_at":1700000000,'
ODD_SCROB_LINES = [
    b'{' + _T + b'"artist":"A","track":"T"}',
    b'{' + _T + b'"artist":"A","track":"T","album":"B","duration":200,"recording_mbid":"r",'
    b'"release_mbid":"s","artist_mbids":["m1","m2"],"accounts":["lastfm:al","listenbrainz:al"],'
    b'"account_times":{"lastfm:al":1700000010}}',
    b'{"listened_at":1700000000.9,"artist":"A","track":"T"}',
    b'{"listened_at":true,"artist":"A","track":"T"}',
    b'{"listened_at":"1700000000","artist":"A","track":"T"}',
    b'{"listened_at":100000000000000000000,"artist":"A","track":"T"}',
    b'{"listened_at":18446744073709551615,"artist":"A","track":"T"}',
    b'{"listened_at":1' + b'0' * 400 + b',"artist":"A","track":"T"}',
    b'{"listened_at":-5,"artist":"A","track":"T"}',
    b'{"listened_at":1e999,"artist":"A","track":"T"}',
    b'{' + _T + b'"artist":"  ","track":"T"}',
    b'{' + _T + b'"track":"T"}',
    b'{' + _T + b'"artist":"A","track":"T","duration":3.5}',
    b'{' + _T + b'"artist":"A","track":"T","duration":3.0}',
    b'{' + _T + b'"artist":"A","track":"T","duration":true}',
    b'{' + _T + b'"artist":"A","track":"T","duration":null,"album":null}',
    b'{' + _T + b'"artist":"A","track":"T","duration":"200"}',
    b'{' + _T + b'"artist":"A","track":"T","album":"","recording_mbid":""}',
    b'{' + _T + b'"artist":"A","track":"T","recording_mbid":5}',
    b'{' + _T + b'"artist":"A","track":"T","artist_mbids":[]}',
    b'{' + _T + b'"artist":"A","track":"T","artist_mbids":""}',
    b'{' + _T + b'"artist":"A","track":"T","artist_mbids":[1]}',
    b'{' + _T + b'"artist":"A","track":"T","accounts":[]}',
    b'{' + _T + b'"artist":"A","track":"T","accounts":""}',
    b'{' + _T + b'"artist":"A","track":"T","accounts":["bad"]}',
    b'{' + _T + b'"artist":"A","track":"T","accounts":[1]}',
    b'{' + _T + b'"artist":"A","track":"T","account_times":{"lastfm:al":-1}}',
    b'{' + _T + b'"artist":"A","track":"T","account_times":{"lastfm:al":true}}',
    b'{' + _T + b'"artist":"A","track":"T","account_times":{"lastfm:al":2199023255553}}',
    b'{' + _T + b'"artist":"A","track":"T","account_times":[]}',
    b'{' + _T + b'"artist":"A","track":"T","account_times":{}}',
    b'{' + _T + b'"artist":"A","track":"T","accounts":["lastfm:al","listenbrainz:al"],'
    b'"account_tracks":{"listenbrainz:al":{"artist":"A","track":"T (Live)"}}}',
    b'{' + _T + b'"artist":"A","track":"T","account_tracks":{}}',
    b'{' + _T + b'"artist":"A","track":"T","account_tracks":[]}',
    b'{' + _T + b'"artist":"A","track":"T","account_tracks":{"lastfm:al":{"artist":"A"}}}',
    b'{' + _T + b'"artist":"A","track":"T","account_tracks":{"lastfm:al":'
    b'{"artist":"A","track":" "}}}',
    b'{' + _T + b'"artist":"A","track":"T","account_tracks":{"lastfm:al":'
    b'{"artist":"A","track":"T","album":"X"}}}',
    b'{' + _T + b'"artist":"A","track":"T","account_tracks":{"lastfm:al":'
    b'{"artist":1,"track":"T"}}}',
    b'{' + _T + b'"artist":"A","track":"T","note":"kept as raw"}',
    b'{' + _T + b'"artist":"A","track":"T","album":" \\t "}',
    b'{' + _T + b'"artist":"A","track":"T","album":""}',
    b'{' + _T + b'"artist":"A","track":"T","sources":["lastfm:al"]}',
    b'{' + _T + b'"artist":"A","artist":"B","track":"T"}',
    b'{' + _T + b'"artist":"A","track":"T\\u0000\\u00e9\\u0007"}',
    b'{' + _T + b'"artist":"\\ud800","track":"T"}',
    b'{' + _T + b'"artist":"A\xff","track":"T"}',
    b'{' + _T + b'"artist":"A","track":"T"',
    b'[1700000000,"A","T"]',
    b'"A - T"',
]


def _scrob(line: bytes) -> Any:
    """What the general way makes of a line (None: it is refused)."""
    try:
        obj = orjson.loads(line)
        record, accounts = parse_scrob(obj, line.decode())
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None
    return record, accounts, obj.get("account_times") or {}, scrob_tracks(obj)


def test_an_album_of_only_whitespace_is_no_album() -> None:
    line = b'{' + _T + b'"artist":"A","track":"T","album":" \\t "}'
    for found in (parse_scrob_line(line), _scrob(line)):
        assert found is not None and found[0].album is None
    kept = parse_scrob_line(b'{' + _T + b'"artist":"A","track":"T","album":" Aa "}')
    assert kept is not None and kept[0].album == " Aa "  # a name is kept as written


def test_parse_scrob_line_reads_a_line_as_parse_scrob_does() -> None:
    plain = [line for line in SCROB_NDJSON.read_bytes().splitlines() if line.strip()]
    for line in plain:  # the lines scrob writes take the fast way
        assert parse_scrob_line(line) is not None and parse_scrob_line(line) == _scrob(line)
    fast = 0
    for line in ODD_SCROB_LINES:
        found = parse_scrob_line(line)
        if found is not None:
            fast += 1
            assert found == _scrob(line), line
    assert fast >= 10


def test_records_of_one_account_are_saved_together_however_it_is_spelled(
        tmp_path: Path) -> None:
    """Two spellings of one account (ListenBrainz names fold case) make one batch, saved
    in the file's order and matched one-to-one with the listens the archive had: the
    record nearer the Last.fm listen joins it, the other is a listen of its own."""
    before = tmp_path / "before.ndjson"
    before.write_text('{"listened_at":1700000250,"artist":"A","track":"T","album":"Y",'
                      '"accounts":["lastfm:bob"]}\n', encoding="utf-8")
    path = tmp_path / "spellings.ndjson"
    path.write_text(
        '{"listened_at":1700000000,"artist":"A","track":"T","album":"X",'
        '"accounts":["listenbrainz:Al"]}\n'
        '{"listened_at":1700000260,"artist":"A","track":"T","album":"Z",'
        '"accounts":["listenbrainz:al"]}\n', encoding="utf-8")
    with Archive(db(tmp_path)) as archive:
        import_file(archive, before)
        report = import_file(archive, path)
        listens = list(archive.listens())
    assert (report.records, report.new, report.merged) == (2, 1, 1)
    assert [(x.listened_at, x.album, x.accounts) for x in listens] == [
        (1700000000, "X", ("listenbrainz:al",)),
        (1700000250, "Y", ("lastfm:bob", "listenbrainz:al")),
    ]


def test_lines_past_what_json_or_sqlite_can_hold(tmp_path: Path) -> None:
    """A duration past SQLite's integers is an invalid line (it stopped the import); a
    line nested as deep as orjson reads is imported (msgspec gives up sooner)."""
    deep = "[" * 1020 + "]" * 1020
    path = tmp_path / "odd.ndjson"
    path.write_text(
        '{"listened_at":1700000000,"artist":"A","track":"T","duration":18446744073709551616}\n'
        '{"listened_at":1700000001,"artist":"A","track":"T","duration":9223372036854775808}\n'
        '{"listened_at":1700000002,"artist":"A","track":"U","sources":' + deep + '}\n'
        '{"listened_at":1700000003,"artist":"A","track":"V","duration":-1}\n',
        encoding="utf-8")
    problems: list[tuple[str, str]] = []
    with Archive(db(tmp_path)) as archive:
        report = import_file(archive, path, on_problem=lambda *p: problems.append(p))
        kept = [(x.track, x.duration) for x in archive.listens()]
    assert problems == [("odd.ndjson:1", "duration must be whole seconds"),
                        ("odd.ndjson:2", "duration must be whole seconds")]
    assert report.invalid == 2 and kept == [("U", None), ("V", -1)]


def test_an_import_through_the_writer_process_saves_what_one_process_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big import plans its names in the command's process and saves through the
    writer process; with small batches and caches small enough to be emptied again and
    again (each time once the writer has caught up), the archive must come out exactly
    as saving everything in one process makes it: the same listens, names, ids and
    counts, repeats and the other account's sightings included."""
    import scrobbler_cli.importers as importers

    monkeypatch.setattr(importers, "BATCH", 1500)
    T = 1_600_000_000
    lines = []
    for i in range(6000):
        line: dict[str, Any] = {"listened_at": T + i * 60, "artist": f"Artist {i % 41}",
                                "track": f"Track {i % 97}", "album": f"Album {i % 13}"}
        if i % 5 == 0:  # also on Last.fm, 20 s earlier
            line["accounts"] = ["import:history.ndjson", "lastfm:alice"]
            line["account_times"] = {"lastfm:alice": T + i * 60 - 20}
        lines.append(json.dumps(line))
    lines += lines[:700]  # repeats: already imported
    path = tmp_path / "history.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def archive_of(name: str, **kwargs: Any) -> tuple[list[Any], ...]:
        with Archive(tmp_path / name, **kwargs) as archive:
            report = import_file(archive, path)
        assert (report.records, report.invalid) == (6700, 0)
        with Archive(tmp_path / name, readonly=True) as archive:
            q = archive.conn.execute
            return (q("SELECT * FROM listens ORDER BY id").fetchall(),
                    q("SELECT * FROM sightings ORDER BY id").fetchall(),
                    *(q(f"SELECT * FROM {t} ORDER BY id").fetchall()
                      for t in ("artists", "tracks", "albums")))

    here = archive_of("here.db")
    there = archive_of("there.db", background=True, name_cache=30)
    assert len(here[0]) == 6000 and len(here[1]) == 1200 and len(here[3]) == 41 * 97
    # seen_at is when each was saved; everything else is the same, ids included
    assert [r[:-1] for r in there[0]] == [r[:-1] for r in here[0]]
    assert [r[:-1] for r in there[1]] == [r[:-1] for r in here[1]]
    assert there[2:] == here[2:]


def test_lines_decoded_many_at_a_time_are_read_exactly_as_one_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scrob NDJSON is decoded 1 MB at a time; whatever the chunks hold (a byte order
    mark, CRLF, a blank line, two values on one line, one value over two lines, another
    key, a bad value, no newline at the end), every line must be kept or reported with
    its own number exactly as reading one line at a time does."""
    import scrobbler_cli.importers as importers

    T = 1_600_000_000

    def line(i: int, **extra: Any) -> str:
        return json.dumps({"listened_at": T + i * 60, "artist": "Björk", "track": f"T{i}",
                           **extra})

    lines = [line(i) for i in range(40)]
    lines[0] = "\ufeff" + lines[0]
    lines[3] += "\r"
    lines[7] = ""
    lines[11] = line(11) + " " + line(111)  # two values
    lines[15] = f'{{"listened_at": {T + 15 * 60},'  # ... and the rest on the next line
    lines[16] = '"artist": "A", "track": "B"}'
    lines[20] = line(20, mood="calm")  # another key: kept (raw) through parse_scrob
    lines[24] = line(24, duration=1.5)  # a bad value
    lines[28] = "   "
    path = tmp_path / "history.ndjson"
    path.write_text("\n".join(lines), encoding="utf-8")  # no newline at the end

    def run(chunk: int) -> tuple[object, ...]:
        monkeypatch.setattr(importers, "CHUNK", chunk)
        with Archive(tmp_path / f"a{chunk}.db") as archive:
            report = import_file(archive, path)
            kept = [(r.listened_at, r.track) for r in archive.listens()]
        return report.records, report.invalid, report.problems, kept

    one_by_one = run(chunk=1)  # every chunk is one line
    assert one_by_one[:3] == (34, 4, [
        ("history.ndjson:12", "not valid JSON (unexpected content after document)"),
        ("history.ndjson:16", "not valid JSON (unexpected end of data)"),
        ("history.ndjson:17", "not valid JSON (unexpected content after document)"),
        ("history.ndjson:25", "duration must be whole seconds")])
    assert (T + 20 * 60, "T20") in one_by_one[3] and len(one_by_one[3]) == 34
    for chunk in (64, 500, 4096, 1 << 22):
        assert run(chunk) == one_by_one, chunk
    # two values on a line and a blank line in one chunk: as many values as lines, and
    # still not one a line
    path.write_text("\n".join([line(0), line(1) + " " + line(2), "", line(3)]) + "\n",
                    encoding="utf-8")
    assert run(chunk=1 << 22)[:3] == (2, 1, [
        ("history.ndjson:2", "not valid JSON (unexpected content after document)")])


@pytest.mark.parametrize("stop_at", [None, 1, 3])
def test_random_dense_histories_restore_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                stop_at: int | None) -> None:
    """Two to four accounts' plays of up to five songs (two of them spellings of one)
    within minutes of each other (some linked by recording MBID alone), saved in random
    batches, some records again: what `scrob listens
    --json` prints of them imports back into an empty archive exactly, in batches of
    any size, also when the import is stopped part-way (``stop_at``: at that batch)
    and run again; importing it again adds nothing."""
    import random

    import scrobbler_cli.importers as importers

    names = ["lastfm:alice", "listenbrainz:alice", "import:x", "listenbrainz:bob"]
    real = Archive.save_rows
    stopped = 0
    for seed in range(150):
        rnd = random.Random(seed)
        accounts = [Account.parse(a) for a in names[:rnd.randint(2, 4)]]
        songs = [("A", "S"), ("A", "S2"), ("B", "S"), ("a", " s"), ("C", "X")
                 ][:rnd.randint(1, 5)]
        with Archive(":memory:") as original:
            batch: list[SourceRecord] = []
            for _ in range(rnd.randint(1, 8)):
                span = rnd.choice([300, 2500, 20000])
                again = rnd.sample(batch, min(3, len(batch))) if rnd.random() < .3 else []
                batch = [SourceRecord(1_700_000_000 + rnd.randint(0, span), *rnd.choice(songs),
                                      album=rnd.choice([None, "Al", "al"]),
                                      duration=rnd.choice([None, 200, 201]),
                                      recording_mbid=rnd.choice([None, None, "m1", "m2"]),
                                      release_mbid=rnd.choice([None, "r1"]),
                                      artist_mbids=rnd.choice([(), ("a1",)]))
                         for _ in range(rnd.randint(1, 10))] + again
                original.save_records(rnd.choice(accounts), batch)
            lines = [json.dumps(x.as_json()) for x in original.listens(newest_first=True)]
        path = tmp_path / "backup.ndjson"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        monkeypatch.setattr(importers, "BATCH", rnd.choice([1, 2, 3, 5, 20_000]))
        with Archive(":memory:") as restored:
            if stop_at is not None:
                calls = iter(range(1, 1000))

                def stops(self: Archive, *args: Any, calls: Any = calls, **kwargs: Any
                          ) -> Any:
                    if next(calls) == stop_at:
                        raise KeyboardInterrupt
                    return real(self, *args, **kwargs)

                monkeypatch.setattr(Archive, "save_rows", stops)
                try:  # (an import of fewer batches ends)
                    import_file(restored, path)
                except KeyboardInterrupt:
                    stopped += 1
                monkeypatch.setattr(Archive, "save_rows", real)
            import_file(restored, path)
            again = [json.dumps(x.as_json()) for x in restored.listens(newest_first=True)]
            assert again == lines, seed
            report = import_file(restored, path)
            assert (report.new, report.merged) == (0, 0), seed
    assert stop_at is None or stopped >= 50


def test_a_listenbrainz_export_pairs_a_song_on_repeat_as_a_sync_does(tmp_path: Path
                                                                     ) -> None:
    """Last.fm and ListenBrainz's newest plays of a song on repeat are synced; the
    ListenBrainz export then brings its older plays. Its records name no line-mates, so
    the run of plays is paired again (``rematch``) as when a sync brings them: four plays
    stay four listens (paired one at a time, one play was counted twice)."""
    lastfm, lb, t = Account("lastfm", "alice"), Account("listenbrainz", "alice"), 1700000000
    lb_times = [2040, 2250, 2459, 2700]

    def archive_after(saving: Callable[[Archive], None]) -> list[tuple[int, ...]]:
        with Archive(":memory:") as archive:
            archive.save_records(lastfm, [SourceRecord(t + s, "A", "S")
                                          for s in (2040, 2460, 2670, 2870)])
            archive.save_records(lb, [SourceRecord(t + s, "A", "S") for s in lb_times[2:]])
            saving(archive)
            return sorted(x.seen_at for x in archive.listens())

    export = tmp_path / "listens.jsonl"
    export.write_text("".join(json.dumps({
        "listened_at": t + s, "user_name": "alice",
        "track_metadata": {"artist_name": "A", "track_name": "S"}}) + "\n"
        for s in lb_times), encoding="utf-8")
    synced = archive_after(lambda archive: archive.save_records(
        lb, [SourceRecord(t + s, "A", "S") for s in lb_times]))
    imported = archive_after(lambda archive: import_file(archive, export))
    assert len(synced) == 4
    assert imported == synced
