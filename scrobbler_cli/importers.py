"""Files into the archive: scrob's own NDJSON and ListenBrainz listening-history exports.

Each format is read by a pure line parser; invalid records are reported with their line
number and reason while the valid ones are kept. Records are saved in large batches per
account, so a million-line file imports at disk speed.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import orjson

from .archive import IMPORT_NOTE, Archive, Mates
from .errors import BadInput, UsageError
from .models import Account, SaveResult, SourceRecord
from .normalize import track_key

FORMATS = ("auto", "scrob", "listenbrainz")
BATCH = 20_000
MAX_TS = 2**40  # account_times beyond this are not seconds
_INT64 = 2**63  # SQLite's integers are in [-2**63, 2**63)
_ACCOUNT = re.compile(r"^[a-z][a-z0-9_-]*:.+$")
# The keys of `scrob listens --json`: a line with no others is fully re-derivable from
# the listen row, so its raw text is not stored again.
_SCROB_KEYS = frozenset({"listened_at", "artist", "track", "album", "duration",
                         "recording_mbid", "release_mbid", "artist_mbids", "sources",
                         "accounts", "account_times", "account_tracks"})


@dataclass
class ImportReport:
    """What an import did. ``records`` counts the valid records read; ``new``,
    ``merged`` and ``duplicates`` count sightings (a scrob NDJSON record that names
    several accounts is one sighting per account), so they add up to ``sightings``."""

    path: str
    format: str
    records: int = 0
    new: int = 0
    merged: int = 0
    duplicates: int = 0
    invalid: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)

    @property
    def sightings(self) -> int:
        return self.new + self.merged + self.duplicates

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path, "format": self.format, "records": self.records,
            "sightings": self.sightings, "new": self.new, "merged": self.merged,
            "duplicates": self.duplicates, "invalid": self.invalid,
        }


# -- pure parsers ---------------------------------------------------------------------


def parse_scrob(obj: Any, raw: str | None = None) -> tuple[SourceRecord, tuple[str, ...]]:
    """One object of ``scrob listens --json`` → a record and the accounts that saw it."""
    if type(obj) is not dict:
        raise ValueError("not a JSON object")
    get = obj.get
    ts = get("listened_at")
    if type(ts) is not int:
        if type(ts) is not float:
            raise ValueError("listened_at must be unix seconds")
        ts = int(ts)
    artist, track = get("artist"), get("track")
    if type(artist) is not str or not artist.strip():
        raise ValueError("artist is missing or empty")
    if type(track) is not str or not track.strip():
        raise ValueError("track is missing or empty")
    duration = get("duration")
    if duration is not None and (type(duration) is not int
                                 or not -_INT64 <= duration < _INT64):  # SQLite's integers
        raise ValueError("duration must be whole seconds")
    mbids = get("artist_mbids") or ()
    if mbids and (type(mbids) is not list or any(type(m) is not str for m in mbids)):
        raise ValueError("artist_mbids must be a list of strings")
    accounts = get("accounts") or ()
    if accounts and (type(accounts) is not list
                     or not all(type(a) is str and _ACCOUNT.match(a) for a in accounts)):
        raise ValueError("accounts must be a list of service:account names")
    times = get("account_times")
    if times is not None and (type(times) is not dict or any(
            type(t) is not int or not 0 <= t <= MAX_TS for t in times.values())):
        raise ValueError("account_times must map accounts to unix seconds")
    tracks = get("account_tracks")
    if tracks is not None and (type(tracks) is not dict or not all(
            type(t) is dict and t.keys() == {"artist", "track"}
            and _named(t["artist"], t["track"]) for t in tracks.values())):
        raise ValueError("account_tracks must map accounts to an artist and a track")
    album, rec_mbid, rel_mbid = get("album"), get("recording_mbid"), get("release_mbid")
    for name, value in (("album", album), ("recording_mbid", rec_mbid),
                        ("release_mbid", rel_mbid)):
        if value is not None and type(value) is not str:
            raise ValueError(f"{name} must be a string")
    if raw is not None and obj.keys() <= _SCROB_KEYS:
        raw = None
    record = SourceRecord(ts, artist, track, _album(album), duration, rec_mbid or None,
                          rel_mbid or None, tuple(mbids), None, raw)
    return record, tuple(accounts)


def _named(artist: object, track: object) -> bool:
    """Whether an artist and a track are names (strings with more than whitespace)."""
    return (type(artist) is str and type(track) is str and bool(artist.strip())
            and bool(track.strip()))


def scrob_tracks(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The (artist, track) of each account in a line's ``account_tracks`` (a line
    ``parse_scrob`` has read)."""
    return {account: (t["artist"], t["track"])
            for account, t in (obj.get("account_tracks") or {}).items()}


def _album(name: str | None) -> str | None:
    """An album name, or None for none: empty or only whitespace (as the services'
    parsers read it; such a name would be an album with an empty key)."""
    return name if name and not name.isspace() else None


class _Track(msgspec.Struct, forbid_unknown_fields=True):
    artist: str
    track: str


class _ScrobLine(msgspec.Struct, forbid_unknown_fields=True):
    """A line of ``scrob listens --json`` holding only its own keys, typed as
    ``parse_scrob`` requires them."""

    listened_at: int | float
    artist: str
    track: str
    album: str | None = None
    duration: int | None = None
    recording_mbid: str | None = None
    release_mbid: str | None = None
    artist_mbids: list[str] | None = None
    sources: Any = None  # written by older versions; not read
    accounts: list[str] | None = None
    account_times: dict[str, int] | None = None
    account_tracks: dict[str, _Track] | None = None


_SCROB_LINE = msgspec.json.Decoder(_ScrobLine)
_SCROB_LINES = msgspec.json.Decoder(list[_ScrobLine])

# record, accounts, account times, account tracks
Scrob = tuple[SourceRecord, tuple[str, ...], dict[str, int], dict[str, tuple[str, str]]]


def parse_scrob_line(line: bytes) -> Scrob | None:
    """``parse_scrob`` of one line as read, with its ``account_times``, when the line is
    a valid one of only scrob's own keys: decoded straight into them by msgspec, half
    the cost of a dict and its checks, on every line of a big import. None for any
    other line (another key, a wrong type, invalid JSON), which ``parse_scrob`` reads and
    reports as before."""
    try:
        line_ = _SCROB_LINE.decode(line)
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return None
    return _scrob_of(line_)


def _scrob_of(line_: _ScrobLine) -> Scrob | None:
    """``parse_scrob_line`` of a line msgspec has decoded."""
    ts = line_.listened_at
    if type(ts) is not int:
        ts = int(ts)
    accounts = line_.accounts or ()
    times = line_.account_times
    duration = line_.duration
    # (bounds first: msgspec reads integers of any size, orjson not past 64 bits)
    if (not 0 <= ts <= MAX_TS or (duration is not None and not -_INT64 <= duration < _INT64)
            or not line_.artist.strip() or not line_.track.strip()
            or (accounts and not all(map(_ACCOUNT.match, accounts)))
            or (times and not all(0 <= t <= MAX_TS for t in times.values()))):
        return None
    tracks = {}
    if line_.account_tracks:
        tracks = {a: (t.artist, t.track) for a, t in line_.account_tracks.items()}
        if not all(_named(*named) for named in tracks.values()):
            return None
    record = SourceRecord(ts, line_.artist, line_.track, _album(line_.album), duration,
                          line_.recording_mbid or None, line_.release_mbid or None,
                          tuple(line_.artist_mbids or ()), None, None)
    return record, tuple(accounts), times or {}, tracks


def parse_listenbrainz(obj: Any) -> tuple[SourceRecord, tuple[str, ...]]:
    """One ListenBrainz listen (export line or API listen) → a record and its account."""
    from .services.listenbrainz import parse_listen

    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    record = parse_listen(obj)
    user = obj.get("user_name")
    return record, ((f"listenbrainz:{user}",) if isinstance(user, str) and user else ())


# -- reading files ----------------------------------------------------------------------

# (where, the JSON value or an Exception, the raw text); or (where, the line's bytes, "")
# for a line of a JSON-lines file, decoded once its format is known (``_decode``). Where a
# line is, is (file name, line number), spelled out only for a problem (``_where``).
Where = str | tuple[str, int]
Item = tuple[Where, Any, str]


def _json_lines(name: str, stream: io.BufferedIOBase | Any, first: int = 1
                ) -> Iterator[Item]:
    """One JSON value per line, read as bytes (see ``_decode``); ``first`` is the first
    line's number."""
    for number, line in enumerate(stream, first):
        text = line.strip()
        if number == 1 and text.startswith(b"\xef\xbb\xbf"):  # a byte order mark
            text = text[3:].strip()
        if text:
            yield (name, number), text, ""


def _decode(line: bytes) -> tuple[Any, str]:
    """A JSON line's value (or the ValueError saying why it has none) and its text: a
    line that is not UTF-8 is reported like any other invalid line, and the lines after
    it are still read."""
    try:
        return orjson.loads(line), line.decode()
    except orjson.JSONDecodeError as exc:  # orjson checks the UTF-8 too
        text = line.decode(errors="replace")
        try:
            line.decode()
        except UnicodeDecodeError as bad:  # (orjson calls it "surrogates not allowed")
            return ValueError(f"not UTF-8 text (byte {bad.start + 1}: {bad.reason})"), text
        return ValueError(f"not valid JSON ({exc.msg})"), text


def _file_lines(path: Path) -> Iterator[Item]:
    """``_json_lines`` of a file, closed once read (or once the import stops reading)."""
    with open(path, "rb") as fh:
        yield from _json_lines(path.name, fh)


#: Bytes of a file of scrob's NDJSON decoded at once (``_scrob_items``): ~8,000 lines, as
#: quick as 4 MB and 34 MB less at the command's peak on a million-line file.
CHUNK = 1 << 20


def _scrob_items(path: Path) -> Iterator[Item]:
    """``_file_lines`` for a file of scrob's own NDJSON, whose lines arrive parsed
    (``parse_scrob_line``'s answer): msgspec decodes 1 MB of lines in one call, a
    million lines ~1 CPU-s less than a call a line. The lines are decoded as the items
    of one JSON array (each newline a comma), so each item is exactly one line: a blank
    line, a line of two values or a value over two lines makes the array invalid. A
    line msgspec decodes but ``parse_scrob_line`` would not take, and every line of a
    chunk it cannot decode whole (also a line of another shape, invalid JSON, a byte
    order mark), come as their bytes, to be read one by one as before."""
    first = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            chunk += fh.readline()  # whole lines
            body = chunk[:-1] if chunk.endswith(b"\n") else chunk
            count = body.count(b"\n") + 1
            try:
                decoded = _SCROB_LINES.decode(b"[" + body.replace(b"\n", b",") + b"]")
            except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
                decoded = []
            if len(decoded) != count:  # read this chunk line by line
                yield from _json_lines(path.name, io.BytesIO(chunk), first)
            else:
                lines: list[bytes] = []
                for i, line_ in enumerate(decoded):
                    found = _scrob_of(line_)
                    if found is None:
                        lines = lines or body.split(b"\n")
                    yield (path.name, first + i), found or lines[i].strip(), ""
            first += count


def _json_document(name: str, text: str) -> Iterator[Item]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{name} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("payload"), dict):
        data = data["payload"].get("listens", [])
    if not isinstance(data, list):
        raise BadInput(f"{name} holds neither a list of listens nor one listen per line")
    for number, obj in enumerate(data, 1):
        text = json.dumps(obj, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800": JSON that no UTF-8 text can hold
            obj = ValueError("holds a lone surrogate (\\ud800-\\udfff), not Unicode text")
        yield f"{name}[{number}]", obj, text


def _sniff(first: Any) -> str:
    if isinstance(first, dict) and "track_metadata" in first:
        return "listenbrainz"
    return "scrob"


def _zip_items(path: Path) -> tuple[Iterator[Item], str | None]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInput(f"{path} is not a readable zip file: {exc}") from None
    names = sorted(
        (n for n in archive.namelist() if re.search(r"(^|/)listens/\d{4}/\d{1,2}\.jsonl$", n)),
        key=lambda n: tuple(int(x) for x in re.findall(r"(\d+)", n)[-2:]),
    )
    if not names:
        raise BadInput(f"{path} holds no listens/YYYY/M.jsonl files",
                       hint="is it a ListenBrainz listening-history export?")
    user = None
    user_files = [n for n in archive.namelist() if n.endswith("user.json")]
    if user_files:
        try:
            user = json.loads(archive.read(user_files[0])).get("username")
        except (ValueError, AttributeError, zipfile.BadZipFile, zlib.error, EOFError,
                NotImplementedError):
            user = None

    def items() -> Iterator[Item]:
        with archive:
            for name in names:
                try:
                    with archive.open(name) as raw:
                        yield from _json_lines(name, raw)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                    raise BadInput(f"{path} is damaged: cannot read {name} ({exc})") from None

    return items(), user


#: The path that means standard input.
STDIN = "-"


def check_input(path: str | Path, fmt: str = "auto") -> Path:
    """The file to import, or a usage error (before any archive is opened or made).
    ``-`` and pipes (``/dev/stdin``, ``<(...)``) are accepted: see ``readable``."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint="use " + ", ".join(FORMATS))
    if str(path) == STDIN:
        import sys

        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("`-` reads the listens from standard input, which is a "
                             "terminal here", hint="pipe a file into it, or give its path")
        return path
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give the file to import")
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if fmt == "scrob" and path.is_file() and zipfile.is_zipfile(path):
        raise UsageError(f"{path} is a zip file, which scrob reads as a ListenBrainz export; "
                         "--format scrob is for scrob's own NDJSON",
                         hint="leave out --format, or use --format listenbrainz")
    return path


def source_name(path: str | Path) -> str:
    """The name ``path``'s listens are imported under (``import:NAME``) and its
    problems are told by: a file's own name; ``stdin`` or ``pipe`` (see ``readable``)."""
    if str(path) in (STDIN, "/dev/stdin"):
        return "stdin"
    return Path(path).name if Path(path).is_file() else "pipe"


@contextmanager
def readable(path: str | Path, spool_in: Path | None = None) -> Iterator[Path]:
    """A regular file holding what ``path`` holds: ``path`` itself, or for ``-``
    (standard input) or a pipe, a copy in a temporary directory in ``spool_in`` (the
    format is told from a file's first bytes, which are then read again from the
    start), removed afterwards. The copy is named ``stdin`` (another pipe's, ``pipe``:
    ``<(...)`` has a new name each time), so its records come from the account
    ``import:stdin`` and problems name ``stdin:LINE``: piping the same listens in
    twice adds nothing."""
    import shutil
    import sys
    import tempfile

    path = Path(path)
    if str(path) != STDIN and path.is_file():
        yield path
        return
    name = source_name(path)
    with tempfile.TemporaryDirectory(prefix="scrob-import-", dir=spool_in) as tmp:
        copy = Path(tmp) / name
        try:
            with open(copy, "wb") as out:
                if str(path) == STDIN:
                    shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
                else:
                    with open(path, "rb") as source:
                        shutil.copyfileobj(source, out, 1 << 20)
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc}") from None
        yield copy


def import_file(
    archive: Archive,
    path: str | Path,
    *,
    fmt: str = "auto",
    on_problem: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``path`` into ``archive``; importing the same file twice adds nothing.
    ``-`` (standard input) and pipes are read through a copy (``readable``)."""
    given = check_input(path, fmt)
    spool_in = None if str(archive.path) == ":memory:" else archive.path.parent
    with readable(given, spool_in) as file:
        report = _import(archive, file, fmt, on_problem, on_progress)
    report.path = str(given)  # (not a pipe's copy)
    return report


def _import(archive: Archive, path: Path, fmt: str,
            on_problem: Callable[[str, str], None] | None,
            on_progress: Callable[[int], None] | None) -> ImportReport:
    default_account = Account("import", path.name)
    user: str | None = None
    if zipfile.is_zipfile(path) or _looks_like_zip(path):
        items, user = _zip_items(path)
        fmt = "listenbrainz"
    else:
        try:
            with open(path, "rb") as fh:
                start = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
            # a first line that is not UTF-8 is no text file (an MP3, a zip renamed),
            # unless it starts as JSON does: then it is one bad line, reported as such
            if start[:1] not in (b"{", b"["):
                codecs.getincrementaldecoder("utf-8")().decode(start.split(b"\n", 1)[0])
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} is not UTF-8 text ({exc.reason})") from None
        head = start[:1]
        if head == b"[" or (head == b"{" and _is_document(path)):
            try:
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as exc:
                raise BadInput(f"{path} is not UTF-8 text ({exc.reason})") from None
            items = _json_document(path.name, text)
        elif fmt == "scrob" or (fmt == "auto" and parse_scrob_line(
                start.split(b"\n", 1)[0]) is not None):  # a first line of scrob's own
            items = _scrob_items(path)
            fmt = "scrob"
        else:
            items = _file_lines(path)
    if user:
        default_account = Account.parse(f"listenbrainz:{user}")

    report = ImportReport(path=str(path), format=fmt)
    pending: dict[Account, list[SourceRecord]] = {}
    pending_mates: dict[Account, Mates] = {}  # of the lines that name several accounts
    # the records of another track than their line's (``account_tracks``), saved last
    late: dict[Account, list[SourceRecord]] = {}
    late_mates: dict[Account, Mates] = {}
    known: dict[str, Account] = {default_account.source: default_account}  # as written
    default_accounts = (default_account.source,)
    parser: Callable[..., tuple[SourceRecord, tuple[str, ...]]] | None = None
    if fmt != "auto":
        parser = parse_scrob if fmt == "scrob" else parse_listenbrainz

    def tally(saved: SaveResult) -> None:
        report.new += saved.new
        report.merged += saved.merged
        report.duplicates += saved.duplicates

    # The archive's newest listen and names when the import began, or when the same
    # file's import began that stopped part-way (``IMPORT_NOTE``, kept from its first
    # save until an import ends): running it again matches with the same listens, and
    # puts back the first sightings of the plays it saved (``Archive.make_first``).
    first_sightings: list[tuple[Account, int, str, str]] = []
    file_id = _fingerprint(path)
    held = _unfinished(archive.note(IMPORT_NOTE), file_id)
    resumed = held is not None
    before, artists_before, tracks_before = held or (archive.last_id(), *archive.name_marks())
    names_before = (artists_before, tracks_before)
    noted = False
    # reading a file is quicker than saving it: this process plans the names too, and
    # leaves the writer process only its SQL (a million listens: the writer ~11 -> ~8.5
    # CPU-s, this process ~5.5 -> ~9; the import 13.16 -> 11.22 s in a slow hour)
    # Its records are matched only with the listens from before it (``upto``): each line
    # of the file is one listen, as the file groups them (``Archive.save_records``).
    saver = archive.saver(tally, plan_names=True, upto=before)

    def save(account: Account, batch: list[SourceRecord], mates: Mates | None) -> None:
        nonlocal noted
        if not noted:  # (before anything is saved: no writer process is running yet)
            archive.set_note(IMPORT_NOTE, json.dumps(
                {"file": file_id, "listens": before, "artists": names_before[0],
                 "tracks": names_before[1]}))
            noted = True
        saver.save(account, batch, mates=mates)

    def flush(account: Account) -> None:
        batch = pending.pop(account, [])
        if batch:
            save(account, batch, pending_mates.pop(account, None))

    def parsed() -> Iterator[tuple[Where, Scrob | str]]:
        """(where, (record, accounts, account times) or the reason it is invalid)."""
        nonlocal parser, fmt
        latest = int(time.time()) + 2 * 86400  # services accept listens ~1 h ahead
        for where, obj, raw in items:
            found = None
            if type(obj) is tuple:  # a line of scrob NDJSON, parsed (``_scrob_items``)
                found = obj
            elif type(obj) is bytes:  # a JSON line
                if parser is parse_scrob:
                    found = parse_scrob_line(obj)
                if found is None:
                    obj, raw = _decode(obj)
            if found is None:
                if isinstance(obj, Exception):
                    yield where, str(obj)
                    continue
                if parser is None:
                    report.format = fmt = _sniff(obj)
                    parser = parse_scrob if fmt == "scrob" else parse_listenbrainz
                try:
                    if parser is parse_scrob:
                        record, accounts = parse_scrob(obj, raw)
                        found = (record, accounts, obj.get("account_times") or {},
                                 scrob_tracks(obj))
                    else:
                        found = (*parser(obj), {}, {})
                except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                    yield where, str(exc) or type(exc).__name__
                    continue
            if not 0 <= found[0].listened_at <= latest:
                yield where, (f"listened_at {found[0].listened_at} is not a plausible time "
                              "in unix seconds (milliseconds?)")
                continue
            if found[2] and (odd := next((t for t in found[2].values() if t > latest),
                                         None)) is not None:
                yield where, (f"account_times holds {odd}, not a plausible time in unix "
                              "seconds (milliseconds?)")
                continue
            yield where, found

    default_batch: list[SourceRecord] | None = None  # pending[default_account], if any
    try:
        with saver:
            for where, found in parsed():
                if isinstance(found, str):
                    _problem(report, where, found, on_problem)
                    continue
                record, accounts, times, tracks = found
                report.records += 1
                if not accounts and not times:  # the file's own account: most lines
                    if default_batch is None:
                        default_batch = pending.setdefault(default_account, [])
                    default_batch.append(record)
                    if len(default_batch) >= BATCH:
                        flush(default_account)
                        default_batch = None
                    if on_progress and report.records % 10_000 == 0:
                        on_progress(report.records)
                    continue
                line = [(known.get(acct) or known.setdefault(acct, Account.parse(acct)),
                         times.get(acct), tracks.get(acct))
                        for acct in accounts or default_accounts]
                if len(line) > 1 and len({account for account, _, _ in line}) < len(line):
                    # one account named twice (Last.fm names fold case): its first
                    firsts: dict[Account, tuple[Account, int | None, Any]] = {}
                    for entry in line:
                        firsts.setdefault(entry[0], entry)
                    line = list(firsts.values())
                for account, own, named in line:
                    # (own: that account's own time of the play, if it differs; named: the
                    # track its record names, if another, linked by recording MBID)
                    saved = record if own is None else replace(record, listened_at=own)
                    if named is not None and track_key(*named) != track_key(
                            record.artist, record.track):
                        # saved once the line's other records are: a listen it made would
                        # keep its names, whichever record is put first on it then
                        saved = replace(saved, artist=named[0], track=named[1])
                        batches, mates = late, late_mates
                    else:
                        batches, mates = pending, pending_mates
                    # others saw it at other times: this is the first sighting
                    first = bool(times) and own is None and batches is pending
                    if first:
                        first_sightings.append((account, record.listened_at, record.artist,
                                                record.track))
                    # one batch per account, however its name is spelled (Last.fm names
                    # fold case): its records are saved together, in the file's order
                    batch = batches.setdefault(account, [])
                    batch.append(saved)
                    if len(line) > 1:
                        mates.setdefault(account, {})[
                            (saved.listened_at, saved.artist, saved.track)] = (
                            first, _line_mates(line, record, account, saved))
                    if len(batch) >= BATCH and batches is pending:
                        flush(account)
                        if account == default_account:
                            default_batch = None
                if on_progress and report.records % 10_000 == 0:
                    on_progress(report.records)
            for account in list(pending):
                flush(account)
            for account, batch in late.items():
                save(account, batch, late_mates.get(account))
        if late:  # their names as the backup spells them (``Archive.respell``)
            archive.respell(((r.artist, r.track) for batch in late.values() for r in batch),
                            above=names_before)
        if first_sightings and resumed:  # (else each was put first as it was saved)
            archive.make_first(first_sightings, after=before)
        archive.drop_note(IMPORT_NOTE)
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text ({exc.reason})") from None
    if report.format == "auto":
        report.format = "scrob"
    return report


def _line_mates(line: list[tuple[Account, int | None, tuple[str, str] | None]],
                record: SourceRecord, account: Account, saved: SourceRecord
                ) -> tuple[tuple[str, str, int, str], ...]:
    """The line-mates of ``account``'s record (``saved``) on a line naming several
    accounts: each other account's (service, name, own time, and the key of its track
    where that is not ``saved``'s), as ``Archive.save_records`` finds them."""
    own_names = (saved.artist, saved.track)
    return tuple(
        (mate.service, mate.name, record.listened_at if at is None else at,
         "" if (names := named or (record.artist, record.track)) == own_names
         else track_key(*names))
        for mate, at, named in line if mate != account)


def _fingerprint(path: Path) -> str:
    """What tells a file from another: its name, size and the CRC of its first MB."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return f"{path.name} {path.stat().st_size} {zlib.crc32(head):08x}"


def _unfinished(note: object, file_id: str) -> tuple[int, int, int] | None:
    """The listen, artist and track ids ``IMPORT_NOTE`` kept for the file, if it holds
    them for this one."""
    if not isinstance(note, str):
        return None
    try:
        held = json.loads(note)
        if held["file"] == file_id:
            found = (held["listens"], held["artists"], held["tracks"])
            if all(type(n) is int for n in found):
                return found
    except (ValueError, TypeError, KeyError):
        pass
    return None


def _looks_like_zip(path: Path) -> bool:
    """A zip file's magic number, so that a truncated export is reported as a damaged zip
    rather than as undecodable text."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _is_document(path: Path) -> bool:
    """Whether a file that starts with ``{`` is one JSON object, a ListenBrainz API reply
    (all on its first line, or indented: a first line of ``{`` or ``{"payload": ...``),
    rather than one listen per line (whatever its name: standard input has none)."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline().strip()
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        return re.match(r'\{\s*(?:"payload"\s*:|$)', first) is not None
    return isinstance(value, dict) and isinstance(value.get("payload"), dict)


def _where(where: Where) -> str:
    return where if isinstance(where, str) else f"{where[0]}:{where[1]}"


def _problem(report: ImportReport, where: Where, reason: str,
             on_problem: Callable[[str, str], None] | None) -> None:
    where = _where(where)
    report.invalid += 1
    if len(report.problems) < 1000:
        report.problems.append((where, reason))
    if on_problem:
        on_problem(where, reason)
