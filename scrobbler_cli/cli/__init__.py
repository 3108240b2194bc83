"""The ``scrob`` command: a thin skin over the library.

Commands parse options, call one library function and render. ``main()`` is the only
place that turns a ``ScrobError`` into one stderr line and an exit code (errors.py).
"""


import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from .. import __version__

HELP = """Keep one complete, private, queryable archive of your listening history.

scrob pulls your listens from Last.fm and ListenBrainz into a local SQLite archive,
counts each play once however many services saw it, pushes them on to the other
service, and answers "what did I listen to?" from the archive, offline.

Exit codes: 0 done, 1 internal error, 2 usage error, 3 credentials missing or
rejected, 4 a remote service failed, 5 archive busy or unreadable, 6 bad input data,
130 interrupted (what was saved stays).
"""


@dataclass
class State:
    db: Path | None = None
    verbose: bool = False
    quiet: bool = False

    def log(self, line: str) -> None:
        if self.verbose:
            from ..errors import redact
            from ..render import log_to_stderr

            log_to_stderr(redact(line))

    def archive(self, *, readonly: bool = False, background: bool = False,
                **options: Any) -> "Any":
        """Open the archive the options and environment point to; ``background`` lets
        big syncs and imports save in a writer process (archive/writer.py); ``options``
        go to ``Archive`` as they are."""
        from .. import config
        from ..archive import Archive

        path = config.db_path(self.db)
        self.log(f"archive: {path}")
        creates = not readonly and options.get("create", True)
        if creates and path != config.default_db_path() and not path.parent.is_dir():
            # a path the user gave: a missing directory is more likely a typo than a wish
            # (what only opens an archive says "no archive at PATH", as before)
            from ..errors import UsageError

            raise UsageError(f"there is no directory {path.parent} for the archive {path}",
                             hint="create it first, or check the path given with --db or "
                                  "SCROB_DB")
        if not readonly:  # (reading needs neither: a typo in them stops only writers)
            settings = config.load()
            options.setdefault("lock_wait", float(settings.lock_wait))
            options.setdefault("tolerance", int(settings.match_tolerance))
        return Archive(path, readonly=readonly, background=background, **options)


_state = State()


def _show_version(value: bool) -> None:
    """``--version`` anywhere among the global options (the option's eager callback runs
    before click asks for a command)."""
    if value:
        import typer

        print(f"scrob {__version__}")
        raise typer.Exit()


def build_app() -> Any:
    import typer

    from . import auth, imports, listens, stats

    app = typer.Typer(
        name="scrob",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        db: Annotated[Path | None, typer.Option(
            "--db", metavar="PATH", envvar="SCROB_DB", show_envvar=True,
            readable=False,  # an unreadable archive is the archive's error (exit 5)
            help="The archive file (default: archive.db in your user data directory).")] = None,
        verbose: Annotated[bool, typer.Option(
            "--verbose", "-v", help="Debug log on stderr (secrets redacted).")] = False,
        quiet: Annotated[bool, typer.Option(
            "--quiet", "-q", help="Nothing on stderr but errors.")] = False,
        version: Annotated[bool, typer.Option(
            "--version", help="Print the version and exit.", is_eager=True,
            callback=_show_version)] = False,
    ) -> None:
        _state.db, _state.verbose, _state.quiet = db, verbose, quiet
        from .. import render

        render.QUIET = quiet
        ctx.obj = _state

    app.add_typer(auth.app, name="auth")
    imports.register(app)
    listens.register(app)
    stats.register(app)
    for name in ("sync", "export"):
        try:
            module = __import__(f"scrobbler_cli.cli.{name}", fromlist=["register"])
        except ImportError:  # pragma: no cover - a command group not built yet
            continue
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run scrob and exit with the code of cli.md."""
    from .._process import collect_rarely, fill_standard_streams, leave

    fill_standard_streams()
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:  # fast path: no third-party import at all
        sys.stdout.write(f"scrob {__version__}\n")
        sys.exit(0)
    collect_rarely()
    if argv is None:  # the process's own: a timeout's SIGTERM stops it as Ctrl-C does
        import signal

        signal.signal(signal.SIGTERM, _terminate)
        hup = getattr(signal, "SIGHUP", None)  # its terminal closed (none on Windows)
        if hup is not None and signal.getsignal(hup) == signal.SIG_DFL:  # (not nohup's)
            signal.signal(hup, _terminate)
    code = run(args)
    if argv is None:  # the process's own command line: nothing runs after this
        leave(code)
    sys.exit(code)


_KEPT = "what was done before it is kept, nothing half-written; run the command again to go on"
_terminated = ""  # the signal that stopped the command, if not Ctrl-C


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (cron's `timeout`, systemd stopping a unit) or SIGHUP (the terminal
    closed): stop as Ctrl-C does, so what is held is saved, the summary printed and the
    exit code 130, not a silent death."""
    import signal

    global _terminated
    _terminated = signal.Signals(signum).name
    raise KeyboardInterrupt


def _interrupted() -> str:
    return f"{f'terminated ({_terminated})' if _terminated else 'interrupted'}; {_KEPT}"


def run(args: list[str]) -> int:
    import errno
    import re
    import sqlite3

    import click
    import typer
    import typer.main

    from ..credentials import register_env_secrets
    from ..errors import ISSUES_URL, ScrobError, redact
    from ..render import error

    register_env_secrets()
    _state.__init__()  # type: ignore[misc]  # fresh for each in-process run (tests)
    from .. import render

    render.QUIET = False
    # Typer >= 0.2x runs on its own copy of click (typer._click), whose exceptions are
    # not click's: catch both, or every usage error would read as an internal error.
    click_errors: tuple[type[Exception], ...] = (click.ClickException,)
    exits: tuple[type[Exception], ...] = (click.exceptions.Exit, typer.Exit)
    aborts: tuple[type[BaseException], ...] = (KeyboardInterrupt, click.exceptions.Abort,
                                               typer.Abort)
    try:
        from typer._click import exceptions as vendored

        click_errors += (vendored.ClickException,)
    except ImportError:  # pragma: no cover - Typer that uses click itself
        pass
    command = typer.main.get_command(build_app())
    try:
        result = command.main(args=args, prog_name="scrob", standalone_mode=False)
        if result == 130:  # Typer turns Ctrl-C into a bare exit code: say what happened
            error(_interrupted())
        return result if isinstance(result, int) else 0
    except SystemExit as exc:
        # click answers a closed stdout (`scrob listens | head`) with sys.exit(1)
        cause = exc.__context__
        if isinstance(cause, OSError) and cause.errno == errno.EPIPE:
            _silence_stdout()
            return 0
        raise
    except exits as exc:
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except click_errors as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `scrob`: the help text
            exc.show()  # type: ignore[attr-defined]
            return 2
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        # Typer and click (8.2+) each suggest a command for a typo: say it once
        text = re.sub(r"( Did you mean [^?]*\?)\1", r"\1", exc.format_message())  # type: ignore[attr-defined]
        error(text + where)
        code = int(getattr(exc, "exit_code", 2))
        return code if code not in (0, 1) else 2
    except aborts:
        error(_interrupted())
        return 130
    except ScrobError as exc:
        if _state.verbose:
            _traceback()
        error(redact(str(exc)))
        return exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except OSError as exc:  # writing the output failed (scrob's own errors are converted)
        error(f"cannot write the output: {exc.strerror or exc}")
        return 1
    except sqlite3.Error as exc:  # disk full, a read-only or damaged archive file
        if _state.verbose:
            _traceback()
        error(f"the archive cannot be used: {exc} (check the file, its directory and the "
              "free disk space; `scrob --db PATH ...` chooses another archive)")
        return 5
    except Exception as exc:  # noqa: BLE001 - the last resort is a clear bug report
        if _state.verbose:
            _traceback()
        error(redact(f"internal error: {type(exc).__name__}: {exc}. This is a bug in scrob; "
                     f"please report it at {ISSUES_URL} (run with --verbose for details)"))
        return 1


def _traceback() -> None:
    import traceback

    from ..errors import redact
    from ..render import visible

    for line in redact(traceback.format_exc()).splitlines():
        sys.stderr.write(visible(line) + "\n")


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def state() -> State:
    return _state
