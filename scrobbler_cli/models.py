"""Plain records passed between the services, the engines and the archive."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SourceRecord:
    """One listen as one source reported it, before identity and dedup.

    ``raw`` is the record exactly as received (JSON text), kept so that nothing a
    service said is lost: the UTF-8 bytes the parsers make, which the archive stores as
    text without decoding them (so bytes must be UTF-8 JSON; a str is taken too).
    ``remote_id`` is the service's own id for the listen where it has one (ListenBrainz
    ``recording_msid``). Not frozen: a sync or an import builds one per listen, and a
    frozen dataclass takes 2.6 times as long to build (1.7 µs).
    """

    listened_at: int
    artist: str
    track: str
    album: str | None = None
    duration: int | None = None
    recording_mbid: str | None = None
    release_mbid: str | None = None
    artist_mbids: tuple[str, ...] = ()
    remote_id: str | None = None
    raw: bytes | str | None = None


#: 9999-12-31T23:59:59Z: a later "timestamp" is no time at all (and would not fit SQLite's
#: integers from 2**63 on); a record claiming one is unusable.
LATEST_TIME = 253_402_300_799

# Services whose user names are case-insensitive, and how each folds them (the engines'
# ``account_for`` use the same).
_NAME_FOLD = {"lastfm": str.casefold, "listenbrainz": str.lower}


@dataclass(frozen=True, slots=True)
class Account:
    """A place listens are seen: ``lastfm:alice``, ``listenbrainz:alice``, ``import:x.jsonl``."""

    service: str
    name: str

    @property
    def source(self) -> str:
        return f"{self.service}:{self.name}"

    @classmethod
    def parse(cls, source: str) -> Account:
        """``service:name``, with the name folded as the service folds it, so an import
        names the same account (and cursor) as a sync does."""
        service, _, name = source.partition(":")
        fold = _NAME_FOLD.get(service)
        return cls(service, fold(name) if fold else name)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of records and the cursor that holds once the page is saved.

    ``cursor`` is the time up to which the account is complete after this page, or
    ``None`` when this page does not advance it (pages read out of time order).
    """

    records: list[SourceRecord]
    cursor: int | None = None


@dataclass(slots=True)
class SaveResult:
    """What saving some records did: how many were new listens, merged, or repeats."""

    received: int = 0
    new: int = 0  # new listens in the archive
    merged: int = 0  # matched a listen another source had already
    duplicates: int = 0  # this source had already reported this listen

    def add(self, other: SaveResult) -> None:
        self.received += other.received
        self.new += other.new
        self.merged += other.merged
        self.duplicates += other.duplicates


@dataclass(slots=True)
class SyncReport:
    """The ``scrob sync --json`` summary of one account (cli.md); ``user`` is None when
    no account is configured (a sync that could not start)."""

    service: str
    user: str | None
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    requests: int = 0
    cursor: int | None = None
    complete: bool = False
    error: str | None = None

    def tally(self, saved: SaveResult) -> None:
        """Count a saved batch: a listen matched to another source's is new here too."""
        self.new += saved.new + saved.merged
        self.duplicates += saved.duplicates

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "service": self.service,
            "user": self.user,
            "fetched": self.fetched,
            "new": self.new,
            "duplicates": self.duplicates,
            "requests": self.requests,
            "cursor": self.cursor,
            "complete": self.complete,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class ExportReport:
    """The ``scrob export --json`` summary (cli.md); ``reasons`` counts rejections by cause."""

    target: str
    candidates: int = 0
    submitted: int = 0
    already_there: int = 0
    rejected: int = 0
    requests: int = 0
    too_old: int = 0
    remaining: int = 0
    #: candidates newer than the target's last sync (less the match tolerance), kept
    #: for a run after the next sync: the target may have gained them meanwhile
    held_back: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # why it stopped, when it failed part-way

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "target": self.target,
            "candidates": self.candidates,
            "submitted": self.submitted,
            "already_there": self.already_there,
            "rejected": self.rejected,
            "requests": self.requests,
            "held_back": self.held_back,
        }
        if self.too_old or self.target.startswith("lastfm"):
            out["too_old"] = self.too_old
        if self.remaining:
            out["remaining"] = self.remaining
        if self.reasons:
            out["reasons"] = dict(sorted(self.reasons.items()))
        if self.error is not None:
            out["error"] = self.error
        return out

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected += n
        self.reasons[reason] = self.reasons.get(reason, 0) + n

    def stopped(self, error: str) -> None:
        """It stopped part-way (``error``): the candidates it had read and not settled
        (sent, rejected, held back, too old) are left for a later run, so the counts
        add up (a batch on the wire when it stopped is sent again, the same bytes)."""
        self.error = error
        unsettled = (self.candidates - self.submitted - self.rejected - self.held_back
                     - self.too_old)
        self.remaining = max(self.remaining, unsettled)


@dataclass(frozen=True, slots=True)
class RankedItem:
    artist: str
    listens: int
    track: str | None = None
    album: str | None = None


@dataclass(slots=True)
class StatsReport:
    """The ``scrob stats --json`` object (cli.md)."""

    start: int
    end: int
    total_listens: int
    unique_artists: int
    unique_tracks: int
    top_artists: list[RankedItem]
    top_albums: list[RankedItem]
    top_tracks: list[RankedItem]

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.start,
            "to": self.end,
            "total_listens": self.total_listens,
            "unique_artists": self.unique_artists,
            "unique_tracks": self.unique_tracks,
            "top_artists": [{"artist": i.artist, "listens": i.listens} for i in self.top_artists],
            "top_albums": [
                {"artist": i.artist, "album": i.album, "listens": i.listens}
                for i in self.top_albums
            ],
            "top_tracks": [
                {"artist": i.artist, "track": i.track, "listens": i.listens}
                for i in self.top_tracks
            ],
        }


@dataclass(frozen=True, slots=True)
class Listen:
    """One listen of the archive, counted once however many sources saw it.

    ``accounts`` are the places it was seen (``service:account``).
    """

    id: int
    listened_at: int
    artist: str
    track: str
    album: str | None = None
    duration: int | None = None
    recording_mbid: str | None = None
    release_mbid: str | None = None
    artist_mbids: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    seen_at: tuple[int, ...] = ()  # each account's own time, in the order of ``accounts``
    #: (account, artist, track) of each account whose record is of another track (linked
    #: to this listen by recording MBID alone)
    account_tracks: tuple[tuple[str, str, str], ...] = ()

    @property
    def sources(self) -> list[str]:
        """The services that have it, each named once (cli.md ``sources``)."""
        return sorted({a.partition(":")[0] for a in self.accounts})

    def to_record(self) -> SourceRecord:
        return SourceRecord(
            listened_at=self.listened_at, artist=self.artist, track=self.track,
            album=self.album, duration=self.duration, recording_mbid=self.recording_mbid,
            release_mbid=self.release_mbid, artist_mbids=self.artist_mbids,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "listened_at": self.listened_at,
            "artist": self.artist,
            "track": self.track,
            "album": self.album,
            "duration": self.duration,
            "recording_mbid": self.recording_mbid,
            "release_mbid": self.release_mbid,
            "artist_mbids": list(self.artist_mbids),
            "sources": self.sources,
            "accounts": list(self.accounts),
        } | self._account_times() | self._account_tracks()

    def _account_times(self) -> dict[str, object]:
        """``account_times``: the accounts whose own time differs from the listen's
        (another service's record of the same play, seconds apart), so that an export
        imports back exactly; left out when there are none."""
        times = {a: t for a, t in zip(self.accounts, self.seen_at) if t != self.listened_at}
        return {"account_times": times} if times else {}

    def _account_tracks(self) -> dict[str, object]:
        """``account_tracks``: the accounts whose record names another track (the
        listen's recording MBID linked them), so that an export imports back exactly:
        that record's identity is its own track's. Left out when there are none."""
        if not self.account_tracks:
            return {}
        return {"account_tracks": {account: {"artist": artist, "track": track}
                                   for account, artist, track in self.account_tracks}}


@dataclass(frozen=True)
class ServiceConfig:
    """What an engine needs to talk to one account of a service.

    Built by the CLI from settings and credentials (or by a library user directly), so
    the engines never read the keyring or the environment themselves.
    """

    service: str
    api_url: str
    user: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    session_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    rate: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress event from a long engine run: ``done`` of ``total`` units (pages or
    listens; ``total`` None while unknown) and the listens counted so far."""

    done: int
    total: int | None
    listens: int
