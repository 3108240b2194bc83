"""``scrob export listenbrainz | lastfm``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .options import Json, Since, Source, Until, User

DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Show what would be sent (NDJSON with --json) and send nothing.")]

app = typer.Typer(help="Push archived listens to a service that lacks them.",
                  no_args_is_help=True)


def _run(service: str, user: str | None, since: str | None, until: str | None,
         source: str | None, dry_run: bool, json_: bool) -> None:
    from .. import config, render
    from ..errors import ScrobError, UsageError, redact
    from ..export import ExportOptions, export_listens
    from ..models import ExportReport
    from ..services.http import prepare_tls
    from ..timeparse import parse_date
    from . import state
    from .common import check_source, own_accounts, service_config

    if not dry_run:
        prepare_tls()  # the CA bundle loads while the archive opens and secrets are read
    st = state()
    start = parse_date(since) if since is not None else None  # a usage error makes no archive
    end = parse_date(until) if until is not None else None
    if start is not None and end is not None and end <= start:
        raise UsageError("--until must be after --since")
    cfg = service_config(service, user)
    items: list[dict[str, Any]] = []

    def on_item(item: dict[str, object]) -> None:
        if json_:
            render.write_ndjson([item])
        else:
            items.append(item)

    # a dry run only reads, but holds back by the match tolerance as a real run does
    tolerance: dict[str, Any] = {"tolerance": int(config.load().match_tolerance)} if dry_run else {}
    try:
        with st.archive(create=False, readonly=dry_run, **tolerance) as archive, render.progress(
                f"export to {service} {cfg.user}", enabled=not st.quiet) as bar:
            check_source(archive, source)
            report = export_listens(archive, cfg, ExportOptions(
                since=start, until=end, source=source, mine=own_accounts(cfg),
                dry_run=dry_run, on_item=on_item if dry_run else None,
                on_progress=lambda e: bar(e.done, total=e.total, info=f"{e.listens:,} sent"),
                log=st.log))
    except (ScrobError, KeyboardInterrupt) as exc:
        # a failure part-way, or Ctrl-C: what was accepted before it is recorded (a
        # re-run goes on from there), and the summary says how much that was, as a
        # sync's does
        failed = getattr(exc, "partial", None)
        if isinstance(failed, ExportReport) and not dry_run:
            failed.stopped("interrupted" if isinstance(exc, KeyboardInterrupt)
                           else redact(str(exc)))
            if json_:
                render.write_json(failed.as_json())
            elif not st.quiet and failed.submitted:
                render.message(_summary(failed, dry_run))
        raise
    if dry_run and not json_:
        render.table(f"would send to {service} {cfg.user}", ["when", "artist", "track", "album"],
                     ([render.when(i["listened_at"]), i["artist"], i["track"], i["album"] or ""]
                      for i in items))
    if json_ and not dry_run:
        render.write_json(report.as_json())
    elif not st.quiet:
        render.message(_summary(report, dry_run))


def _summary(r: object, dry_run: bool) -> str:
    from .. import render
    from ..models import ExportReport

    assert isinstance(r, ExportReport)
    verb = "would submit" if dry_run else "submitted"
    text = (f"{r.target}: {render.count(r.candidates, 'candidate')}, {verb} {r.submitted:,}, "
            f"{r.already_there:,} already there, {r.rejected:,} rejected")
    if r.too_old:
        text += f", {r.too_old:,} too old for the service"
    if r.reasons:
        text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(r.reasons.items())) + ")"
    if r.remaining:
        text += f"; {r.remaining:,} left for a later run"
    if r.held_back:
        service, name = r.target.split(":", 1)
        text += (f"; {r.held_back:,} held back, too recent to tell whether {r.target} has "
                 f"them: a run after a later `scrob sync {service} --user {name}` sends "
                 "what it lacks")
    return text + f"; {render.count(r.requests, 'request')}"


@app.command("listenbrainz")
def export_listenbrainz(user: User = None, since: Since = None, until: Until = None,
                        source: Source = None, dry_run: DryRun = False,
                        json_: Json = False) -> None:
    """Push archived listens that the ListenBrainz account lacks (listen type import).

    What the account has is judged from the archive, so sync it first. Listens from 15
    minutes before its last sync started on (plays may still have been on their way to it,
    and two services' times of one play differ by up to the match tolerance) are held back
    (held_back) until a later sync shows whether it has them. Batches are as large as the
    server allows; listens the server would reject are reported and never block the others.
    Running it twice submits nothing the second time.
    """
    _run("listenbrainz", user, since, until, source, dry_run, json_)


@app.command("lastfm")
def export_lastfm(user: User = None, since: Since = None, until: Until = None,
                  source: Source = None, dry_run: DryRun = False, json_: Json = False) -> None:
    """Push archived listens that the Last.fm account lacks (track.scrobble, 50 a request).

    What the account has is judged from the archive, so sync it first. Listens from 15
    minutes before its last sync started on (plays may still have been on their way to it,
    and two services' times of one play differ by up to the match tolerance) are held back
    (held_back) until a later sync shows whether it has them. Last.fm only accepts
    scrobbles from the last 14 days: older listens are counted as too_old, not sent. On the
    daily scrobble cap it stops and reports how many remain; a later run continues.
    """
    _run("lastfm", user, since, until, source, dry_run, json_)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="export")
