"""Whole-process figures for ListenBrainz sync and export, against the fake server.

    python3 benchmarks/listenbrainz_sync.py [--listens 100000] [--repeat 3]
                                            [--rss-listens 1000000]

The fake ListenBrainz (tests/fakes) runs in this process on loopback with no injected
latency; `scrob` runs as a subprocess, as a user runs it. Prints one line per figure
with its target:

- full sync of ``--listens`` listens: listens/s (target >= 60,000/s), the median of
  ``--repeat`` syncs (3), each into a new archive;
- export of ``--listens`` listens to an empty account: submit requests (target exactly
  one per 1000, plus retries) and listens/s (target >= 30,000/s);
- peak RSS of `scrob` while syncing ``--rss-listens`` listens (target <= 150 MB): the
  sum of its own peak and its writer process's (``memory.PeakRss``).

The fake's own first-time JSON encoding of each listen is warmed up by an unmeasured
sync first, so the figures are scrob's, not the fake's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from memory import PeakRss  # noqa: E402
from synthetic import history, write_ndjson  # noqa: E402

from tests.fakes.listenbrainz_server import FakeListenBrainz  # noqa: E402

TOKEN = "bench-token-0000-1111-2222"


class Cpu:
    """CPU seconds of the last ``run``: scrob's (the child) and this process's (the
    fake server), so that figures taken on a busy machine can still be compared."""

    scrob = 0.0
    server = 0.0


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run scrob; (wall seconds, peak RSS in MB of it and its writer process, stdout)."""
    # The fake server runs in this process and keeps what scrob submits: a cyclic
    # collection would scan every listen it holds again and again (half of the fake's
    # CPU on an export, taken from scrob on a two-core machine). None of it is garbage.
    gc.disable()
    try:
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "scrobbler_cli", *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        memory = PeakRss(proc.pid)
        out, err = proc.communicate()
        took = time.perf_counter() - start
        rss = memory.stop()
    finally:
        gc.freeze()
        gc.enable()
    print(f"  (peak RSS per process, MB: {memory.each()})")
    after = os.times()
    Cpu.scrob = (after.children_user - before.children_user
                 + after.children_system - before.children_system)
    Cpu.server = after.user - before.user + after.system - before.system
    if proc.returncode != 0:
        sys.exit(f"scrob {' '.join(args)} failed ({proc.returncode}): {err[-2000:]}")
    return took, rss, out


def env_for(work: Path, fake: FakeListenBrainz, user: str, name: str) -> dict[str, str]:
    db = work / f"{name}.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCROB_")}
    env.update({
        "SCROB_DB": str(db),
        "SCROB_CONFIG": str(work / "config.toml"),
        "SCROB_LISTENBRAINZ_API_URL": fake.url,
        "SCROB_LISTENBRAINZ_USER": user,
        "SCROB_LISTENBRAINZ_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
    })
    return env


def fill(fake: FakeListenBrainz, user: str, n: int) -> int:
    fake.add_user(user, TOKEN if user == "bench" else None)
    rows = ((r["listened_at"], r["artist"], r["track"], r["album"], r["duration"])
            for r in history(n))
    fake.add_listens(user, rows)
    gc.freeze()  # the fake's stored history is never garbage: not the collector's work
    return len(fake.listens(user)) if n <= 200_000 else n


def bench_sync(work: Path, fake: FakeListenBrainz, n: int, repeat: int) -> None:
    t0 = time.perf_counter()
    stored = fill(fake, "synced", n)
    print(f"fake server: {stored:,} listens ready in {time.perf_counter() - t0:.1f}s")
    run(["--quiet", "sync", "listenbrainz", "--json"], env_for(work, fake, "synced", "warm"))
    times = []
    for i in range(repeat):  # each into a new archive
        took, rss, out = run(["--quiet", "sync", "listenbrainz", "--json"],
                             env_for(work, fake, "synced", f"sync{i}"))
        report = json.loads(out)
        assert report["new"] == stored, report
        times.append(took)
        print(f"  run {i + 1}: {took:.2f}s = {stored / took:,.0f} listens/s; "
              f"{report['requests']} requests; peak RSS {rss:.0f} MB; "
              f"CPU: scrob {Cpu.scrob:.2f}s, fake server {Cpu.server:.2f}s")
    took = statistics.median(times)
    print(f"sync {stored:,} listens: {took:.2f}s = {stored / took:,.0f} listens/s, median of "
          f"{repeat} (target >= 60,000/s); fastest {min(times):.2f}s, slowest {max(times):.2f}s")


def bench_export(work: Path, fake: FakeListenBrainz, n: int) -> None:
    fake.add_user("bench", TOKEN)
    data = work / "history.ndjson"
    write_ndjson(str(data), n)
    env = env_for(work, fake, "bench", "export")
    run(["--quiet", "import", str(data)], env)
    run(["--quiet", "sync", "listenbrainz"], env)  # export needs to know the account: empty
    before = len(fake.requests_to("/1/submit-listens"))
    took, _, out = run(["--quiet", "export", "listenbrainz", "--json"], env)
    report = json.loads(out)
    submits = len(fake.requests_to("/1/submit-listens")) - before
    stored = len(fake.listens("bench"))
    assert report["submitted"] == report["candidates"] == stored, (report, stored)
    print(f"export {report['submitted']:,} listens: {took:.2f}s = "
          f"{report['submitted'] / took:,.0f} listens/s (target >= 30,000/s); "
          f"{submits} submit requests (target {-(-report['submitted'] // 1000)}); "
          f"CPU: scrob {Cpu.scrob:.2f}s, fake server {Cpu.server:.2f}s")
    took, _, out = run(["--quiet", "export", "listenbrainz", "--json"], env)
    again = len(fake.requests_to("/1/submit-listens")) - before - submits
    print(f"export again: {took:.2f}s, {json.loads(out)['submitted']} submitted, "
          f"{again} submit requests (target 0)")


def bench_rss(work: Path, fake: FakeListenBrainz, n: int) -> None:
    t0 = time.perf_counter()
    fill(fake, "big", n)
    print(f"fake server: {n:,} listens ready in {time.perf_counter() - t0:.1f}s")
    env = env_for(work, fake, "big", "big")
    took, rss, out = run(["--quiet", "sync", "listenbrainz", "--json"], env)
    report = json.loads(out)
    print(f"sync {report['new']:,} listens: {took:.1f}s = {report['new'] / took:,.0f} "
          f"listens/s; peak RSS {rss:.0f} MB, scrob and its writer process "
          f"(target <= 150 MB); CPU: scrob {Cpu.scrob:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listens", type=int, default=100_000)
    parser.add_argument("--rss-listens", type=int, default=1_000_000,
                        help="listens for the peak-RSS sync (0 to skip)")
    parser.add_argument("--keep", help="directory to keep the archives in")
    parser.add_argument("--only", choices=("sync", "export", "rss"))
    parser.add_argument("--repeat", type=int, default=3,
                        help="syncs to time, each into a new archive (the median is the "
                             "figure: this machine's speed varies from minute to minute)")
    opts = parser.parse_args()
    scratch = None if opts.keep else tempfile.TemporaryDirectory(prefix="scrob-lb-bench-")
    work = Path(opts.keep or scratch.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}; files in {work}")
    try:
        _run_all(opts, work)
    finally:
        if scratch is not None:
            scratch.cleanup()  # the million-listen archive alone is ~0.8 GB


def _run_all(opts: argparse.Namespace, work: Path) -> None:
    with FakeListenBrainz() as fake:
        if opts.only in (None, "sync"):
            bench_sync(work, fake, opts.listens, max(1, opts.repeat))
        if opts.only in (None, "export"):
            bench_export(work, fake, opts.listens)
        if opts.only in (None, "rss") and opts.rss_listens:
            bench_rss(work, fake, opts.rss_listens)


if __name__ == "__main__":
    main()
