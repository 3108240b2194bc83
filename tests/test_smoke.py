"""The installed command starts, and the fast paths stay free of heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys

from scrobbler_cli import __version__


def fresh(code: str, heavy: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run ``code`` in a new interpreter: what it printed, and which of ``heavy`` it loaded."""
    probe = f"\nimport sys\nprint([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code + probe], capture_output=True, text=True,
                         check=True).stdout
    printed, _, last = out.rstrip("\n").rpartition("\n")
    return printed, ast.literal_eval(last)


def test_version_fast_path_imports_nothing_heavy() -> None:
    out, heavy = fresh("from scrobbler_cli.cli import main\n"
                       "try:\n    main(['--version'])\nexcept SystemExit:\n    pass",
                       ("httpx", "keyring", "sqlite_utils", "rich", "typer", "tenacity"))
    assert f"scrob {__version__}" in out
    assert heavy == []


def test_help_does_not_import_network_or_storage_libraries() -> None:
    out, heavy = fresh("from scrobbler_cli.cli import run\nrun(['--help'])",
                       ("httpx", "keyring", "sqlite_utils", "rich.console", "tenacity"))
    assert "Usage: scrob" in out
    assert heavy == []


def test_python_dash_m_runs(scrob_proc) -> None:
    result = scrob_proc("--version")
    assert result.code == 0
    assert result.out.strip() == f"scrob {__version__}"


def test_the_services_load_httpx_without_its_command_line_client() -> None:
    """``import httpx`` loads its own CLI (rich's console and pygments' lexers) whenever
    they are installed, and typer installs them: ~40 ms and ~7 MB a sync never uses."""
    out, heavy = fresh("import scrobbler_cli.engines.lastfm, scrobbler_cli.engines.listenbrainz\n"
                       "import httpx\nprint(callable(httpx.main))",
                       ("httpx._main", "rich", "pygments"))
    assert (out, heavy) == ("True", [])  # and httpx.main is still there (a stub)


def test_without_blocks_modules_for_one_import_only() -> None:
    import json
    import sys

    import pytest

    from scrobbler_cli._imports import without

    assert "scrob_no_such_module" not in sys.modules
    with without("scrob_no_such_module", "json"):
        with pytest.raises(ImportError, match="halted"):  # blocked, not merely missing
            import scrob_no_such_module  # type: ignore[import-not-found]  # noqa: F401
        import json as again  # already imported: left alone
    assert again is json
    assert "scrob_no_such_module" not in sys.modules  # unblocked after


def test_the_command_exits_with_its_output_whole_and_its_exit_code(tmp_path) -> None:
    """The process ends without the interpreter's teardown (``cli._leave``): what it
    printed into a pipe (block-buffered) must still all arrive, with its exit code."""
    import json
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def scrob(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scrobbler_cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    history = tmp_path / "history.ndjson"
    history.write_text("".join(
        json.dumps({"listened_at": 1_600_000_000 + i * 300, "artist": f"Artist {i % 7}",
                    "track": f"Track {i}"}) + "\n" for i in range(3000)))
    assert scrob("--quiet", "import", str(history)).returncode == 0
    listens = scrob("listens", "--json", "--limit", "3000")
    lines = listens.stdout.splitlines()
    assert listens.returncode == 0 and len(lines) == 3000
    assert json.loads(lines[-1])["track"].startswith("Track ")
    version = scrob("--quiet", "--version")  # print(): left in stdout's buffer
    assert (version.returncode, version.stdout) == (0, f"scrob {__version__}\n")
    missing = scrob("--db", str(tmp_path / "none.db"), "stats")
    assert missing.returncode == 5 and "no archive at" in missing.stderr


def test_the_command_runs_the_garbage_collector_rarely() -> None:
    """A sync makes millions of short-lived containers and almost no cycles: the default
    threshold (700) cost 8-13 % of a big sync in collections that found nothing."""
    from scrobbler_cli._process import GC_EVERY

    out, _ = fresh("import gc\nfrom scrobbler_cli.cli import main\n"
                   "before = gc.get_threshold()\n"
                   "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                   "print(*before, *gc.get_threshold())", ())
    before, after = ([int(n) for n in out.split()[-6:][i:i + 3]] for i in (0, 3))
    # (Python's own default: 700 up to 3.12, 2000 from 3.13)
    assert before[0] < GC_EVERY and after == [GC_EVERY, *before[1:]]


def test_the_writer_process_runs_without_the_garbage_collector(tmp_path) -> None:
    """The writer process's batches are millions of containers and it makes no cycles:
    even rare collections cost ~7 % of a big import's writer. The command's own process
    keeps collecting (rarely)."""
    db = tmp_path / "a.db"
    out, _ = fresh("import gc, os\nfrom scrobbler_cli.archive import writer\n"
                   "writer.serve = lambda *a, **k: print('collecting:', gc.isenabled())\n"
                   f"code = writer.main([{str(db)!r}, '300', '10', '10', '0', str(os.getppid())])\n"
                   "print('exit', code)", ())
    assert out.splitlines()[-2:] == ["collecting: False", "exit 0"]


def test_a_closed_or_full_stdout_is_no_bug(tmp_path) -> None:
    """Started with stdout closed (`>&-`) the command still does its work, its output
    dropped; a full device is one clear line, not an internal error."""
    import os

    env = {**os.environ, "SCROB_DB": str(tmp_path / "a.db")}
    history = tmp_path / "h.ndjson"
    history.write_text('{"listened_at": 1600000000, "artist": "A", "track": "T"}\n')

    def closed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scrobbler_cli", *args], env=env,
                              capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda: os.close(1))  # after stdout's dup2

    imported = closed("import", str(history))  # its summary is on stderr
    assert imported.returncode == 0 and "1 new listen," in imported.stderr
    for args in (("listens", "--json"), ("--version",)):
        result = closed(*args)
        assert (result.returncode, result.stderr) == (0, ""), args
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            result = subprocess.run([sys.executable, "-m", "scrobbler_cli", "listens",
                                     "--json"], env=env, stdout=full, stderr=subprocess.PIPE,
                                    text=True, timeout=120)
        assert result.returncode == 1
        assert result.stderr == ("scrob: error: cannot write the output: "
                                 "No space left on device\n")
