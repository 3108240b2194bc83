"""``scrob import PATH``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import Json


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_(
        path: Annotated[Path, typer.Argument(
            metavar="PATH", help="The file: scrob NDJSON, or a ListenBrainz export "
                                 "(.zip, .jsonl or .json); - reads standard input.")],
        fmt: Annotated[str, typer.Option(
            "--format", help="auto, scrob or listenbrainz (default: detect).")] = "auto",
        json_: Json = False,
    ) -> None:
        """Add listens from a file to the archive.

        Reads scrob's own NDJSON (what `scrob listens --json` prints, so an archive
        round-trips losslessly) and ListenBrainz listening-history exports. Invalid
        records are reported with their line number and skipped; the valid ones are kept
        and the command exits with code 6. Importing the same file twice adds nothing.
        A record that names several accounts (`accounts` in scrob's NDJSON) is one
        listen with a sighting for each, and the summary counts sightings. Records are
        matched with the listens the archive held before the import, not with each
        other: to merge two archives' backups, import one after the other.
        PATH may be - (or a pipe): `scrob --db old.db listens --json | scrob import -`.
        """
        from .. import render
        from .._process import collecting_never
        from ..archive import IMPORT_FOLD_AFTER, IMPORT_NAME_CACHE
        from ..errors import BadInput
        from ..importers import STDIN, check_input, import_file, source_name
        from . import state

        check_input(path, fmt)  # a usage error makes no archive
        name = source_name(path)
        st = state()
        shown = 0

        def problem(where: str, reason: str) -> None:
            nonlocal shown
            shown += 1
            if shown <= 50:
                render.warn(f"{where}: skipped: {reason}")
            elif shown == 51:
                render.warn("more invalid records; only the first 50 are listed")

        # one big job with no memory target: bigger name caches, rarer folds (faster);
        # millions of records, rows and name tuples and no reference cycles among them,
        # which the cyclic collector would only walk again and again (a million listens:
        # 0.5-1.5 of this process's ~9 CPU-s), as in the writer process
        with collecting_never(), st.archive(background=True, name_cache=IMPORT_NAME_CACHE,
                                            fold_after=IMPORT_FOLD_AFTER) as archive, \
                render.progress(f"importing {name}", enabled=not st.quiet) as bar:
            report = import_file(archive, path, fmt=fmt, on_problem=problem,
                                 on_progress=lambda n: bar(info=f"{n:,} records"))
        given = "standard input" if str(path) == STDIN else str(path)
        if json_:
            render.write_json(report.as_json())
        elif not st.quiet:
            # a record naming several accounts is saved (and counted) once for each
            seen = (f", {render.count(report.sightings, 'sighting')} by the accounts they "
                    "name" if report.sightings != report.records else "")
            render.message(
                f"{render.count(report.records, 'record')} read from {name} "
                f"({report.format}){seen}: {render.count(report.new, 'new listen')}, "
                f"{render.count(report.merged, 'matched listen')} already archived from "
                f"another source, {report.duplicates:,} already imported")
        if report.invalid:
            kept = ("the valid ones were imported" if report.records
                    else "none was valid, nothing was imported")
            raise BadInput(f"{render.count(report.invalid, 'invalid record')} in {given} "
                           f"{'was' if report.invalid == 1 else 'were'} skipped; {kept}")
