"""The library is usable without the CLI: every public name resolves."""

from __future__ import annotations

import scrobbler_cli


def test_all_is_the_documented_public_api() -> None:
    assert set(scrobbler_cli.__all__) == {
        "Archive", "SourceRecord", "Account", "Page", "SyncReport", "ExportReport",
        "StatsReport", "ScrobError", "import_file", "compute_stats", "save_pages",
        "sync_account", "export_listens", "__version__",
    }


def test_all_names_resolve() -> None:
    for name in scrobbler_cli.__all__:
        assert getattr(scrobbler_cli, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        scrobbler_cli.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_library_round_trip_without_the_cli(tmp_path) -> None:
    from scrobbler_cli import Account, Archive, SourceRecord, compute_stats

    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(Account("lastfm", "alice"),
                             [SourceRecord(1_700_000_000, "Björk", "Jóga")], cursor=1_700_000_001)
        report = compute_stats(archive, 0, 2_000_000_000)
        assert report.total_listens == 1
        assert report.top_artists[0].artist == "Björk"
        assert archive.get_cursor(Account("lastfm", "alice")) == 1_700_000_001
