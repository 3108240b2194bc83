"""The command-line contract: exit codes, stdout/stderr, filters, literal display."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scrobbler_cli import __version__
from scrobbler_cli.archive import Archive
from scrobbler_cli.models import Account, SourceRecord

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")
IMPORT = Account("import", "old.jsonl")
T = 1_714_600_000  # 2024-05-01T21:46:40Z

ESC_COLOR = "\x1b[31m"
ESC_TITLE = "\x1b]0;pwned\x07"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An archive with a small known history; SCROB_DB points at it."""
    path = tmp_path / "archive.db"
    with Archive(path) as archive:
        archive.save_records(LASTFM, [
            SourceRecord(T, "Radiohead", "Reckoner", album="In Rainbows"),
            SourceRecord(T + 600, "Radiohead", "Nude", album="In Rainbows"),
            SourceRecord(T + 3600, "Blur", "Song 2", album="Blur", duration=122),
            SourceRecord(T + 7200, "Portishead", "Roads"),
        ])
        archive.save_records(LB, [
            SourceRecord(T + 45, "radiohead", "reckoner", album="In Rainbows"),
            SourceRecord(T + 9000, "Björk", "Jóga", album="Homogenic"),
        ])
        archive.save_records(IMPORT, [SourceRecord(T - 86400, "Blur", "Beetlebum")])
    monkeypatch.setenv("SCROB_DB", str(path))
    return path


@pytest.fixture
def fresh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget secrets registered by earlier tests, so redaction is tested from scratch."""
    from scrobbler_cli import errors

    monkeypatch.setattr(errors, "_KNOWN_SECRETS", set())


def tracks(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [row["track"] for row in result.ndjson()]


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("scrob: error: ")
    return lines[0]


# -- basics ---------------------------------------------------------------------


def test_version(scrob) -> None:
    result = scrob("--version")
    assert (result.code, result.out, result.err) == (0, f"scrob {__version__}\n", "")


def test_help_lists_commands_and_exit_codes(scrob) -> None:
    result = scrob("--help")
    assert result.code == 0
    for word in ("import", "listens", "stats", "auth", "Exit codes"):
        assert word in result.out
    assert result.err == ""
    for command in ("import", "listens", "stats", "auth", "auth status"):
        sub = scrob(*command.split(), "--help")
        assert sub.code == 0 and sub.out.startswith("Usage: scrob " + command)


def test_bare_scrob_shows_help_without_data_on_stdout(scrob) -> None:
    result = scrob()
    assert result.code == 2
    assert result.out == ""
    assert "Usage: scrob" in result.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bogus"], "--bogus"),
        (["listens", "--bogus"], "--bogus"),
        (["frobnicate"], "frobnicate"),
        (["listens", "--since", "last tuesday"], "last tuesday"),
        (["listens", "--until", "2024-02-30"], "2024-02-30"),
        (["listens", "--format", "xml"], "xml"),
        (["listens", "--limit", "-1"], "--limit"),
        (["listens", "--limit", "many"], "--limit"),
        (["listens", "--tz", "Nowhere/Special"], "Nowhere/Special"),
        (["import"], "PATH"),
        (["auth", "logout"], "SERVICE"),
        (["auth", "logout", "myspace"], "myspace"),
        (["stats", "--year", "2024", "--month", "2024-05"], "cannot be combined"),
    ],
)
def test_usage_errors_exit_2_with_one_line(scrob, db: Path, args: list[str],
                                           needle: str) -> None:
    result = scrob(*args)
    assert result.code == 2
    assert result.out == ""
    line = one_error_line(result)
    assert needle.lower() in line.lower()
    assert "internal error" not in line


# -- stdout is data, stderr is talk --------------------------------------------------


def test_json_output_is_valid_even_when_empty(scrob, tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    Archive(path).close()
    listens = scrob("--db", str(path), "listens", "--json")
    assert (listens.code, listens.out, listens.err) == (0, "", "")  # zero NDJSON lines
    same = scrob("--db", str(path), "listens", "--format", "json")
    assert same.out == ""
    stats = scrob("--db", str(path), "stats", "--json")
    assert stats.code == 0 and stats.err == ""
    assert stats.json()["total_listens"] == 0  # type: ignore[index]
    status = scrob("auth", "status", "--json")
    assert status.code == 0 and status.err == ""
    assert isinstance(status.json(), dict)
    filtered = scrob("--db", str(path), "listens", "--json", "--artist", "nobody")
    assert filtered.out == ""


def test_listens_json_lines(scrob, db: Path) -> None:
    result = scrob("listens", "--json")
    assert result.code == 0 and result.err == ""
    rows = result.ndjson()
    assert len(rows) == 6
    for row in rows:
        assert isinstance(row, dict)
        for key, kind in (("listened_at", int), ("artist", str), ("track", str),
                          ("sources", list)):
            assert isinstance(row[key], kind)
        assert "album" in row and "recording_mbid" in row
    reckoner = next(r for r in rows if r["track"] == "Reckoner")  # type: ignore[index]
    assert reckoner == {
        "listened_at": T, "artist": "Radiohead", "track": "Reckoner", "album": "In Rainbows",
        "duration": None, "recording_mbid": None, "release_mbid": None, "artist_mbids": [],
        "sources": ["lastfm", "listenbrainz"], "accounts": ["lastfm:alice", "listenbrainz:alice"],
        # ListenBrainz saw the same play 45 s later: its own time is kept for round trips
        "account_times": {"listenbrainz:alice": T + 45},
    }
    assert result.out.endswith("\n") and all(line for line in result.out.split("\n")[:-1])


def test_quiet_import_says_nothing_and_normal_import_talks_on_stderr(scrob, tmp_path: Path
                                                                      ) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    talk = scrob("import", str(path))
    assert talk.code == 0 and talk.out == "" and "1 record read" in talk.err
    quiet = scrob("-q", "import", str(path))
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    data = scrob("-q", "import", "--json", str(path))
    assert data.err == "" and data.json()["duplicates"] == 1  # type: ignore[index]


def test_errors_go_to_stderr_only(scrob, tmp_path: Path) -> None:
    result = scrob("--db", str(tmp_path / "missing.db"), "listens", "--json")
    assert result.code == 5
    assert result.out == ""
    assert "no archive" in one_error_line(result)


# -- listens filters ---------------------------------------------------------------------


def test_listens_default_order_is_newest_first(scrob, db: Path) -> None:
    assert tracks(scrob("listens", "--json")) == [
        "Jóga", "Roads", "Song 2", "Nude", "Reckoner", "Beetlebum"]
    assert tracks(scrob("listens", "--json", "--reverse")) == [
        "Beetlebum", "Reckoner", "Nude", "Song 2", "Roads", "Jóga"]


def test_listens_limit_takes_the_newest_or_with_reverse_the_oldest(scrob, db: Path) -> None:
    assert tracks(scrob("listens", "--json", "--limit", "2")) == ["Jóga", "Roads"]
    assert tracks(scrob("listens", "--json", "--limit", "2", "--reverse")) == [
        "Beetlebum", "Reckoner"]
    assert scrob("listens", "--json", "--limit", "0").out == ""
    everything = tracks(scrob("listens", "--json"))
    for huge in ("99999999999999999999999", str(2**63)):  # past SQLite's integers: all
        assert tracks(scrob("listens", "--json", "--limit", huge)) == everything
        assert scrob("stats", "--json", "--limit", huge).code == 0


def test_listens_since_until(scrob, db: Path) -> None:
    # --since inclusive, --until exclusive; dates in the given zone
    assert tracks(scrob("listens", "--json", "--since", str(T + 600), "--until",
                        str(T + 7200))) == ["Song 2", "Nude"]
    assert tracks(scrob("listens", "--json", "--until", "2024-05-01", "--tz", "UTC")) == [
        "Beetlebum"]
    assert tracks(scrob("listens", "--json", "--since", "2024-05-02T00:00+00:00")) == [
        "Jóga"]
    assert tracks(scrob("listens", "--json", "--since", "2024-05-02", "--tz", "UTC")) == [
        "Jóga"]
    # 2024-05-02 starts 2 hours earlier in Berlin: Song 2 (22:46Z) and Roads (23:46Z)
    # are on the 2nd there
    assert tracks(scrob("listens", "--json", "--since", "2024-05-02",
                        "--tz", "Europe/Berlin")) == ["Jóga", "Roads", "Song 2"]


def test_listens_name_filters_ignore_case_and_spacing(scrob, db: Path) -> None:
    assert tracks(scrob("listens", "--json", "--artist", "  RADIOHEAD ")) == [
        "Nude", "Reckoner"]
    assert tracks(scrob("listens", "--json", "--artist", "blur")) == ["Song 2", "Beetlebum"]
    assert tracks(scrob("listens", "--json", "--track", "song 2")) == ["Song 2"]
    assert tracks(scrob("listens", "--json", "--album", "in rainbows")) == ["Nude", "Reckoner"]
    assert tracks(scrob("listens", "--json", "--artist", "björk", "--album", "HOMOGENIC")) == [
        "Jóga"]
    assert tracks(scrob("listens", "--json", "--artist", "Radio")) == []  # not a substring
    for option in ("--artist", "--track", "--album"):  # an empty name is a mistake
        result = scrob("listens", "--json", option, " ")
        assert (result.code, result.out) == (2, "")
        assert f"{option} needs a name" in result.err


def test_listens_source_filter(scrob, db: Path) -> None:
    assert tracks(scrob("listens", "--json", "--source", "listenbrainz")) == [
        "Jóga", "Reckoner"]
    assert tracks(scrob("listens", "--json", "--source", "lastfm:alice")) == [
        "Roads", "Song 2", "Nude", "Reckoner"]
    # an account it has nothing from: an empty answer, and a warning naming the ones it has
    nobody = scrob("listens", "--json", "--source", "lastfm:bob")
    assert (nobody.code, tracks(nobody)) == (0, [])
    assert nobody.err == ("scrob: no listens in the archive came from lastfm:bob"
                          " (its lastfm accounts: alice)\n")
    assert "(its import accounts: old.jsonl)" in scrob(
        "listens", "--json", "--source", "import:x").err
    assert scrob("--quiet", "listens", "--json", "--source", "lastfm:bob").err == ""
    assert scrob("listens", "--json", "--source", "lastfm:alice").err == ""
    assert tracks(scrob("listens", "--json", "--source", "import")) == ["Beetlebum"]
    # spelled as the service spells it: the service and a Last.fm name ignore case
    assert tracks(scrob("listens", "--json", "--source", "LastFM:Alice")) == [
        "Roads", "Song 2", "Nude", "Reckoner"]


def test_an_unknown_source_is_a_usage_error_not_an_empty_answer(scrob, db: Path) -> None:
    for source, says in (("spotify", "unknown service 'spotify'"),
                         ("lastfm:", "no account after 'lastfm:'")):
        for args in (("listens", "--json"), ("export", "listenbrainz", "--dry-run")):
            result = scrob(*args, "--source", source)
            assert (result.code, result.out) == (2, "") and says in result.err


def test_a_source_only_an_import_named_can_be_chosen(scrob, db: Path, tmp_path: Path
                                                     ) -> None:
    """An imported file may name accounts of any service (``spotify:bob``), and the
    listens show that source: ``--source`` takes it too, and still refuses a service no
    listen came from, listing the ones there are."""
    played = tmp_path / "spotify.ndjson"
    played.write_text('{"listened_at": 1600000000, "artist": "Low", "track": "Words",'
                      ' "accounts": ["spotify:bob"]}\n')
    assert scrob("import", str(played)).code == 0
    for source in ("spotify", "Spotify:bob"):
        assert tracks(scrob("listens", "--json", "--source", source)) == ["Words"]
    sent = scrob("export", "listenbrainz", "--dry-run", "--json", "--source", "spotify",
                 "--user", "alice")
    assert [item["track"] for item in sent.ndjson()] == ["Words"]
    typo = scrob("listens", "--json", "--source", "spotfy")
    assert (typo.code, typo.out) == (2, "")
    assert "unknown service 'spotfy'" in typo.err and "import, spotify" in typo.err
    bad = scrob("listens", "--json", "--source", "spot fy")
    assert bad.code == 2 and "'spot fy' is not a service name" in bad.err


@pytest.mark.parametrize("args", [
    ("stats", "--json", "--from", ""), ("stats", "--json", "--to", ""),
    ("stats", "--json", "--range", ""), ("listens", "--json", "--since", ""),
    ("listens", "--json", "--until", ""), ("sync", "listenbrainz", "--since", ""),
    ("sync", "lastfm", "--user", ""), ("export", "lastfm", "--dry-run", "--since", ""),
    ("export", "listenbrainz", "--dry-run", "--until", ""),
    ("export", "listenbrainz", "--dry-run", "--user", " "),
], ids=lambda a: " ".join(x or "''" for x in a))
def test_an_empty_value_is_a_usage_error_not_the_default(scrob, db: Path, args) -> None:
    """`--since "$LAST"` with LAST unset must not quietly mean every listen, nor `--from`
    another period, nor `--user` the configured account."""
    result = scrob(*args)
    assert (result.code, result.out) == (2, "")
    assert len(result.err.strip().splitlines()) == 1


def test_listens_csv(scrob, db: Path) -> None:
    result = scrob("listens", "--format", "csv", "--reverse", "--limit", "3")
    assert result.code == 0 and result.err == ""
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0] == ["listened_at", "artist", "track", "album", "duration",
                       "recording_mbid", "release_mbid", "sources"]
    assert rows[1:] == [
        [str(T - 86400), "Blur", "Beetlebum", "", "", "", "", "import"],
        [str(T), "Radiohead", "Reckoner", "In Rainbows", "", "", "", "lastfm listenbrainz"],
        [str(T + 600), "Radiohead", "Nude", "In Rainbows", "", "", "", "lastfm"],
    ]


def test_listens_table(scrob, db: Path) -> None:
    result = scrob("listens", "--tz", "UTC")
    assert result.code == 0 and result.err == ""
    assert "2024-05-01 21:46" in result.out
    assert "Reckoner" in result.out and "lastfm, listenbrainz" in result.out
    berlin = scrob("listens", "--tz", "Europe/Berlin")
    assert "2024-05-01 23:46" in berlin.out


# -- remote text is shown literally ------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no cell is folded
    path = tmp_path / "hostile.db"
    with Archive(path) as archive:
        archive.save_records(LASTFM, [
            SourceRecord(T, "[red]Artist[/red]", "[bold]x[/bold]", album="[link=x]a[/link]"),
            SourceRecord(T + 1000, f"Evil{ESC_COLOR}Red", f"Title{ESC_TITLE}Song"),
            SourceRecord(T + 2000, "Bidi\u202eevil", "Bell\x07\x08Back\rCR"),
        ])
    monkeypatch.setenv("SCROB_DB", str(path))
    return path


def assert_no_raw_controls(text: str) -> None:
    for bad in (ESC_COLOR, ESC_TITLE, "\x1b]", "\x07", "\x08", "\r", "\u202e"):
        assert bad not in text, repr(bad)


@pytest.mark.parametrize("mark", ["\u061c", "\u200e", "\u200f", "\u202e", "\u2067"])
def test_every_bidi_control_is_shown_escaped(mark: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Unicode's Bidi_Control characters, the Arabic letter mark (U+061C) included: in a
    table made visible, in JSON written as an escape (the same string once parsed)."""
    from scrobbler_cli import render

    assert render.visible(f"abc{mark}123") == f"abc\\u{ord(mark):04x}123"
    render.write_ndjson([{"artist": f"abc{mark}123"}])
    out = capsys.readouterr().out
    assert mark not in out and json.loads(out) == {"artist": f"abc{mark}123"}


def test_a_table_title_is_literal_too(capsys: pytest.CaptureFixture[str]) -> None:
    """A title may carry a user name the server spelled (`scrob auth listenbrainz` stores
    the name its answer gives): export --dry-run's "would send to listenbrainz NAME"."""
    from scrobbler_cli import render

    render.table(f"to Ev{ESC_COLOR}il [b]x[/b]", ["a"], [["1" * 40]], caption=f"c{ESC_COLOR}")
    out = capsys.readouterr().out
    assert_no_raw_controls(out)
    assert "Ev\\x1b[31mil [b]x[/b]" in out and "c\\x1b[31m" in out


def test_markup_in_names_is_printed_literally(scrob, hostile: Path) -> None:
    result = scrob("listens", "--tz", "UTC")
    assert result.code == 0
    assert "[bold]x[/bold]" in result.out
    assert "[red]Artist[/red]" in result.out
    assert "[link=x]a[/link]" in result.out


def test_escape_sequences_never_reach_a_table(scrob, hostile: Path) -> None:
    result = scrob("listens", "--tz", "UTC")
    assert result.code == 0
    assert_no_raw_controls(result.out)
    assert "\\x1b[31m" in result.out  # shown, made visible
    assert "\\x1b]0;pwned\\x07" in result.out


def test_escape_sequences_never_reach_a_terminal(scrob, hostile: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    table = scrob("listens", "--tz", "UTC")
    assert table.code == 0
    assert_no_raw_controls(table.out)
    assert "[bold]x[/bold]" in table.out
    assert "\x1b" not in table.out  # NO_COLOR: plain, not even a bold header
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rows = scrob("listens", "--format", "csv")
    assert rows.code == 0
    assert_no_raw_controls(rows.out)
    assert "\\x1b[31m" in rows.out


def test_escape_sequences_survive_json_exactly(scrob, hostile: Path) -> None:
    result = scrob("listens", "--json", "--reverse")
    assert result.code == 0
    assert_no_raw_controls(result.out)
    rows = result.ndjson()
    assert [r["track"] for r in rows] == [  # type: ignore[index]
        "[bold]x[/bold]", f"Title{ESC_TITLE}Song", "Bell\x07\x08Back\rCR"]
    assert rows[1]["artist"] == f"Evil{ESC_COLOR}Red"  # type: ignore[index]
    assert rows[2]["artist"] == "Bidi\u202eevil"  # type: ignore[index]


def test_csv_to_a_file_keeps_exact_values(scrob, hostile: Path) -> None:
    result = scrob("listens", "--format", "csv", "--reverse")
    rows = list(csv.reader(io.StringIO(result.out, newline="")))
    assert rows[2][2] == f"Title{ESC_TITLE}Song"


def test_stats_table_shows_names_literally(scrob, hostile: Path) -> None:
    result = scrob("stats", "--range", "all")
    assert result.code == 0
    assert_no_raw_controls(result.out)
    assert "[bold]x[/bold]" in result.out and "[red]Artist[/red]" in result.out
    data = scrob("stats", "--range", "all", "--json").json()
    assert f"Evil{ESC_COLOR}Red" in [a["artist"] for a in data["top_artists"]]  # type: ignore[index]


def test_import_summary_shows_a_hostile_file_name_visibly(scrob, tmp_path: Path) -> None:
    path = tmp_path / f"evil{ESC_TITLE}{ESC_COLOR}.ndjson"
    path.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    result = scrob("import", str(path))
    assert result.code == 0
    assert "1 record read" in result.err
    assert_no_raw_controls(result.err)


def test_error_lines_show_control_characters_visibly(scrob, tmp_path: Path) -> None:
    result = scrob("--db", str(tmp_path / f"no{ESC_TITLE}where.db"), "listens")
    assert result.code == 5
    assert_no_raw_controls(result.err)


# -- internal errors, tracebacks and secrets ---------------------------------------------

TOKEN = "lb-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def boom(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError(f"GET https://api.listenbrainz.org/1/x failed for {TOKEN}")


def test_internal_error_is_one_line_without_verbose(scrob, db: Path, fresh_secrets: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", TOKEN)
    monkeypatch.setattr("scrobbler_cli.stats.compute_stats", boom)
    result = scrob("stats", "--json")
    assert result.code == 1
    assert result.out == ""
    line = one_error_line(result)
    assert "internal error" in line and "RuntimeError" in line
    assert "https://github.com/" in line  # where to report it
    assert TOKEN not in result.err


def test_verbose_shows_a_traceback_but_never_a_secret(scrob, db: Path, fresh_secrets: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", TOKEN)
    monkeypatch.setattr("scrobbler_cli.stats.compute_stats", boom)
    result = scrob("--verbose", "stats", "--json")
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.err
    assert "RuntimeError" in result.err and "boom" in result.err
    assert "scrob: debug:" in result.err
    assert TOKEN not in result.out + result.err
    assert TOKEN[:12] not in result.out + result.err


def test_verbose_commands_never_print_secrets(scrob, db: Path, fresh_secrets: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", TOKEN)
    monkeypatch.setenv("SCROB_LASTFM_SESSION_KEY", "lastfm-session-abcdef123456")
    everything = ""
    for args in (["-v", "auth", "status"], ["-v", "auth", "status", "--json"],
                 ["-v", "listens", "--json"], ["-v", "stats", "--json"],
                 ["-v", "listens", "--since", TOKEN]):
        result = scrob(*args)
        everything += result.out + result.err
    assert TOKEN not in everything
    assert "lastfm-session-abcdef123456" not in everything


def test_verbose_archive_error_has_traceback_and_exit_code(scrob, tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not a database " * 100)
    result = scrob("-v", "--db", str(bad), "listens")
    assert result.code == 5
    assert "Traceback" in result.err
    assert result.err.rstrip().splitlines()[-1].startswith("scrob: error: cannot open")


def test_ctrl_c_is_a_clean_exit(scrob, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("scrobbler_cli.stats.compute_stats", interrupt)
    result = scrob("stats", "--json")
    assert result.code == 130
    assert result.out == ""
    assert "interrupted" in one_error_line(result)


def test_closed_pipe_is_not_an_error(db: Path) -> None:
    """`scrob listens --json | head -1` exits quietly."""
    with Archive(db) as archive:
        archive.save_records(LASTFM, [SourceRecord(T + 100_000 + i, "A", f"T{i}")
                                      for i in range(20_000)])
    proc = subprocess.Popen([sys.executable, "-m", "scrobbler_cli", "listens", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert json.loads(first)["track"] == "T19999"
    assert b"Traceback" not in err and b"Error" not in err


def test_import_gives_the_archive_bigger_name_caches(scrob, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An import is one big job with no memory target: its name caches are bigger than a
    sync's and it folds the name counts seldom (faster on a long history), and its archive
    comes out the same."""
    from scrobbler_cli.archive import (
        FOLD_AFTER,
        IMPORT_FOLD_AFTER,
        IMPORT_NAME_CACHE,
        NAME_CACHE,
        Archive,
    )

    sizes: list[tuple[int, int]] = []
    init = Archive.__init__

    def spy(self: Archive, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        sizes.append((self.name_cache, self.fold_after))

    monkeypatch.setattr(Archive, "__init__", spy)
    path = tmp_path / "x.ndjson"
    path.write_text("".join(f'{{"listened_at": {1000 + i}, "artist": "A{i % 3}", '
                            f'"track": "B{i}"}}\n' for i in range(20)))
    assert scrob("-q", "import", str(path)).code == 0
    assert sizes == [(IMPORT_NAME_CACHE, IMPORT_FOLD_AFTER)]
    assert IMPORT_NAME_CACHE > NAME_CACHE and IMPORT_FOLD_AFTER > FOLD_AFTER
    report = scrob("stats", "--range", "all", "--json").json()
    assert (report["total_listens"], report["unique_artists"]) == (20, 3)  # type: ignore[index]


def test_usage_errors_make_no_archive(scrob, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "archive.db"  # SCROB_DB
    monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "alice")
    for args, says in (
            (("export", "listenbrainz", "--since", "bogus"), "cannot read the date"),
            (("import", str(tmp_path / "missing.ndjson")), "no such file"),
            (("import", str(tmp_path)), "is a directory"),
            (("import", "--format", "csv", str(tmp_path)), "unknown format")):
        result = scrob(*args)
        assert result.code == 2 and says in result.err, (args, result)
        assert not archive.exists() and not archive.with_suffix(".db.lock").exists()


def test_a_mistyped_command_is_suggested_once(scrob) -> None:
    result = scrob("lisens")
    assert result.code == 2
    assert result.err.count("Did you mean 'listens'?") == 1


def test_stats_from_in_the_future_says_why(scrob, db: Path) -> None:
    result = scrob("stats", "--from", "2999-01-01")
    assert result.code == 2 and "--from is in the future" in result.err
    result = scrob("stats", "--from", "2024-05-02", "--to", "2024-05-01")
    assert result.code == 2 and "--to must be after --from" in result.err


def test_the_archive_path_is_not_judged_by_the_option_parser(
        scrob, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable archive is the archive's error (exit 5), not a usage error (2):
    --db is opened by the archive, which reports what really went wrong."""
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k:
                        False if str(p) == str(db) else real(p, mode, *a, **k))
    assert scrob("--db", str(db), "stats", "--json").code == 0


def test_listens_refuses_contradictory_options(scrob, db: Path) -> None:
    for args, says in ((("--since", "2024-05-02", "--until", "2024-05-01"),
                        "--until must be after --since"),
                       (("--json", "--format", "csv"), "two formats")):
        result = scrob("listens", *args)
        assert (result.code, result.out) == (2, "") and says in result.err


@pytest.mark.parametrize("args", [["listens"], ["stats"], ["import", "FILE"]])
def test_a_directory_as_the_archive_is_named_as_one(scrob, tmp_path: Path,
                                                   args: list[str]) -> None:
    data = tmp_path / "h.ndjson"
    data.write_text('{"listened_at": 1700000000, "artist": "A", "track": "T"}\n')
    folder = tmp_path / "music"
    folder.mkdir()
    result = scrob("--db", str(folder), *[str(data) if a == "FILE" else a for a in args])
    assert result.code == 5 and result.out == ""
    assert result.err.count("\n") == 1
    assert "is a directory" in result.err and "scrob --db PATH" in result.err
    assert list(folder.iterdir()) == []  # nothing was made inside it


def test_counts_in_summaries_agree_with_their_number() -> None:
    from scrobbler_cli.render import count

    assert [count(n, "request") for n in (0, 1, 2, 1200)] == [
        "0 requests", "1 request", "2 requests", "1,200 requests"]


def test_an_archive_path_in_a_missing_directory_is_refused_not_created(
        scrob, tmp_path: Path) -> None:
    """`--db /typo/dir/a.db` (or SCROB_DB): a directory the user did not make is more
    likely a typo than a wish; scrob's own default directory is still made as needed."""
    data = tmp_path / "history.ndjson"
    data.write_text('{"listened_at": 1714600000, "artist": "A", "track": "B"}\n')
    typo = tmp_path / "musci" / "archive.db"
    result = scrob("--db", str(typo), "import", str(data))
    assert result.code == 2
    assert f"there is no directory {typo.parent}" in result.err
    assert not typo.parent.exists()
    exported = scrob("--db", str(typo), "export", "listenbrainz")  # only opens one
    assert exported.code == 5 and f"no archive at {typo}" in exported.err
    (tmp_path / "music").mkdir()
    assert scrob("--db", str(tmp_path / "music" / "archive.db"), "import", str(data)
                 ).code == 0


@pytest.mark.parametrize(("n", "warned"), [(50, False), (51, True)])
def test_a_table_says_it_was_cut_only_when_there_is_more(
        scrob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, warned: bool) -> None:
    path = tmp_path / "archive.db"
    monkeypatch.setenv("SCROB_DB", str(path))
    with Archive(path) as archive:
        archive.save_records(LASTFM, [SourceRecord(T + i * 600, "A", f"Song {i}")
                                      for i in range(n)])
    result = scrob("listens")
    assert result.code == 0
    assert ("showing 50 listens" in result.err) is warned
    assert f"Song {n - 1}" in result.out  # the newest first
    assert ("Song 0" in result.out) is not warned  # the oldest, the 51st


@pytest.mark.parametrize(("service", "needle"), [
    ("listenbrainz", "no ListenBrainz account is configured"),
    ("lastfm", "no Last.fm account is configured"),
])
def test_a_sync_that_cannot_start_makes_no_archive(scrob, tmp_path: Path, service: str,
                                                   needle: str) -> None:
    archive = tmp_path / "archive.db"
    result = scrob("--db", str(archive), "sync", service, "--json")
    assert result.code == 3
    assert needle in result.err
    (summary,) = result.ndjson()  # the summary of a failed sync, as ever
    assert summary["service"] == service and needle in summary["error"]
    assert summary["user"] is None  # no account: none to name
    assert summary["complete"] is False
    assert not archive.exists() and not Path(f"{archive}.lock").exists()
