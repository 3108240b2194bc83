"""How much of the throughput targets SQLite alone takes: the floor under any writer.

    python3 benchmarks/floor.py [--listens 100000] [--batch 2000 --batch 20000]

The sync and import targets are bound by writing listens into the archive. This script
separates what the archive's schema costs from what scrob's code adds. Over the same
synthetic history (synthetic.py, each listen with a ListenBrainz-shaped raw record),
into a fresh archive each time, with the archive's own connection settings:

- ``sqlite alone``: only the statements that put N new listens into the archive (the
  ``listens`` rows with their raw records and indexes, the new artist, track and album
  rows, the cursor, one commit per batch), with every row built beforehand. No identity
  reads, no matching, no fold of the name counts, no Python per listen: no writer can
  do less and keep the schema.
- ``save_records``: ``Archive.save_records`` on the same listens and batches, plus the
  closing fold: everything scrob's writer process does except reading its batches from
  the pipe.

``--no-raw`` makes them listens as ``scrob import`` reads scrob's own NDJSON (no raw
record to keep: the row holds all of it), for the import target.

Each line prints µs a listen; compare them with a target's budget (import 100,000/s:
10 µs a listen for the whole command; ListenBrainz 60,000/s: 100,000 listens in 1.67 s,
start-up included; Last.fm 40,000/s: 2.5 s).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from synthetic import history  # noqa: E402

from scrobbler_cli.archive import Archive, queries  # noqa: E402
from scrobbler_cli.models import Account, SourceRecord  # noqa: E402
from scrobbler_cli.normalize import SEP, name_key  # noqa: E402

ACCOUNT = Account("listenbrainz", "floor")


def records(n: int, *, raw: bool = True) -> list[SourceRecord]:
    """``n`` listens as the ListenBrainz client would hand them to the archive (``raw``)
    or as ``scrob import`` reads scrob's own NDJSON (no raw record: the row holds it all)."""
    out = []
    for i, row in enumerate(history(n)):
        msid = str(uuid.UUID(int=i))
        listen = {"inserted_at": row["listened_at"] + 5, "listened_at": row["listened_at"],
                  "recording_msid": msid, "track_metadata": {
                      "additional_info": {"duration": row["duration"], "recording_msid": msid,
                                          "submission_client": "scrob"},
                      "artist_name": row["artist"], "release_name": row["album"],
                      "track_name": row["track"]},
                  "user_name": ACCOUNT.name}
        out.append(SourceRecord(
            listened_at=int(row["listened_at"]), artist=str(row["artist"]),
            track=str(row["track"]), album=str(row["album"]), duration=int(row["duration"]),
            remote_id=msid if raw else None,
            raw=json.dumps(listen, ensure_ascii=False, separators=(",", ":"),
                           sort_keys=True).encode() if raw else None))
    return out


def prebuilt(recs: list[SourceRecord], batch: int) -> list[tuple[list, list, list, list]]:
    """Per batch: (artists, tracks, albums, listens) rows, ids assigned, as the archive
    would write them. The history's few exact repeats are left out (identity)."""
    ids: dict[str, dict[str, int]] = {"a": {}, "t": {}, "b": {}}
    seen: set[tuple[int, int]] = set()
    out = []
    planner = Archive(":memory:")
    for start in range(0, len(recs), batch):
        a_rows: list = []
        t_rows: list = []
        b_rows: list = []
        l_rows: list = []
        for r in recs[start:start + batch]:
            a = name_key(r.artist)
            keys = (("a", a, r.artist, None), ("t", a + SEP + name_key(r.track), r.track, a),
                    ("b", a + SEP + name_key(r.album or ""), r.album, a))
            got = []
            for kind, key, name, owner in keys:
                table = ids[kind]
                if key not in table:
                    table[key] = len(table) + 1
                    row = (table[key], key, name) if kind == "a" else \
                        (table[key], key, name, ids["a"][owner])
                    {"a": a_rows, "t": t_rows, "b": b_rows}[kind].append(row)
                got.append(table[key])
            if (r.listened_at, got[1]) in seen:
                continue
            seen.add((r.listened_at, got[1]))
            # the values as the archive binds them ('' for absent ones: see plan_rows)
            l_rows.append(planner.plan_rows([r])[0][0][:10] + tuple(got))
        out.append((a_rows, t_rows, b_rows, l_rows))
    return out


def sqlite_alone(path: Path, batches: list[tuple[list, list, list, list]]) -> float:
    with Archive(path) as archive:
        conn = archive.conn
        conn.execute("INSERT INTO accounts (id, service, account) VALUES (1, ?, ?)",
                     (ACCOUNT.service, ACCOUNT.name))
        conn.commit()
        insert = queries.INSERT_LISTEN.format(account_id=1, seen_at=1_700_000_000)
        start = time.perf_counter()
        for a_rows, t_rows, b_rows, l_rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO artists (id, key, name) VALUES (?, ?, ?)", a_rows)
            for table, rows in (("tracks", t_rows), ("albums", b_rows)):
                conn.executemany(f"INSERT INTO {table} (id, key, name, artist_id)"
                                 " VALUES (?, ?, ?, ?)", rows)
            conn.executemany(insert, l_rows)
            conn.execute(queries.UPSERT_CURSOR, (ACCOUNT.service, ACCOUNT.name,
                                                 l_rows[-1][0], 0))
            conn.execute("COMMIT")
        took = time.perf_counter() - start
        with conn:  # nothing for the closing fold to do: no fold in the floor
            conn.execute("INSERT INTO meta (key, value) VALUES ('counted_to', ?)",
                         (rows_written(batches),))
    return took


def rows_written(batches: list[tuple[list, list, list, list]]) -> int:
    return sum(len(b[3]) for b in batches)


def save_records(path: Path, recs: list[SourceRecord], batch: int) -> float:
    start = time.perf_counter()
    with Archive(path) as archive:
        for i in range(0, len(recs), batch):
            part = recs[i:i + batch]
            archive.save_records(ACCOUNT, part, cursor=part[-1].listened_at)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listens", type=int, default=100_000)
    parser.add_argument("--no-raw", action="store_true",
                        help="listens as scrob's own NDJSON import reads them (no raw)")
    parser.add_argument("--batch", type=int, action="append",
                        help="records per transaction (repeatable; default 2000 and 20000)")
    opts = parser.parse_args()
    gc.disable()  # as in the writer process, which saves without the cyclic collector
    n = opts.listens
    t0 = time.perf_counter()
    recs = records(n, raw=not opts.no_raw)
    print(f"{n:,} synthetic listens built in {time.perf_counter() - t0:.1f}s "
          f"(raw records {sum(len(r.raw or '') for r in recs) / n:.0f} bytes on average)")
    with tempfile.TemporaryDirectory(prefix="scrob-floor-") as work:
        for batch in opts.batch or [2000, 20_000]:
            rows = prebuilt(recs, batch)
            alone = sqlite_alone(Path(work) / f"alone-{batch}.db", rows)
            full = save_records(Path(work) / f"save-{batch}.db", recs, batch)
            print(f"batches of {batch:,}: sqlite alone {alone:.2f}s = {alone / n * 1e6:.1f} µs "
                  f"a listen; save_records {full:.2f}s = {full / n * 1e6:.1f} µs a listen "
                  f"({alone / full:.0%} of it is the floor)")


if __name__ == "__main__":
    main()
