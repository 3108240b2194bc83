"""Last.fm sync figures: throughput, latency hiding, and memory.

    python3 benchmarks/lastfm_sync.py                      # all three, default sizes
    python3 benchmarks/lastfm_sync.py --only throughput --listens 100000
    python3 benchmarks/lastfm_sync.py --only latency --latency-listens 20000
    python3 benchmarks/lastfm_sync.py --only rss --rss-listens 1000000

The fake Last.fm server (tests/fakes/lastfm_server.py) runs in this process on loopback;
the real `scrob sync lastfm` runs as a subprocess against it, with a fresh archive each
time, so every figure includes process start, the HTTP round trips, parsing and the
archive's commits. Each figure is printed with its target.

- throughput: a full sync of --listens with no injected latency and the request rate
  unthrottled (SCROB_LASTFM_RATE), so it measures scrob's own work per listen; the
  median of --repeat syncs (3);
- latency: 250 ms injected per request at the default 5 requests/s: wall time against
  requests / 5 s, once with scrob's concurrent fetching and once one page at a time;
- rss: the peak resident memory of scrob (and its writer process, summed; see
  memory.py) while it syncs --rss-listens.
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
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from memory import PeakRss  # noqa: E402
from synthetic import history  # noqa: E402

from tests.fakes.lastfm_server import FakeLastfm  # noqa: E402

USER = "bench"
# One page at a time: the same command with the engine's concurrency set to 1.
SEQUENTIAL = ("import sys, scrobbler_cli.engines.lastfm as e; e.CONCURRENCY = 1; "
              "from scrobbler_cli.cli import main; main(sys.argv[1:])")


def load(fake: FakeLastfm, n: int) -> None:
    """``n`` synthetic listens ending an hour ago (so all lie inside the sync window).

    Then every page is served once: the fake builds each item's JSON the first time it
    serves it, a cost of the fake that must not count against scrob.
    """
    t0 = time.perf_counter()
    end = int(time.time()) - 3600
    fake.add_scrobbles(USER, ((row["listened_at"], row["artist"], row["track"], row["album"])
                              for row in history(n, end=end)))
    with httpx.Client() as client:
        for page in range(1, n // 1000 + 2):
            client.get(fake.url, params={"method": "user.getRecentTracks", "user": USER,
                                         "api_key": fake.api_key, "limit": "1000",
                                         "page": str(page), "format": "json"})
    fake.request_log.clear()
    gc.freeze()  # the fake's stored history is never garbage: not the collector's work
    print(f"  (server loaded with {n:,} listens in {time.perf_counter() - t0:.1f}s)")


def run_sync(fake: FakeLastfm, work: Path, *, rate: float | None = None,
             sequential: bool = False) -> tuple[float, dict[str, Any], int]:
    """One fresh full sync in a subprocess: (wall seconds, JSON summary, peak RSS KiB of
    scrob and its writer process)."""
    db = work / f"archive-{time.monotonic_ns()}.db"
    env = {**os.environ, "SCROB_DB": str(db), "SCROB_CONFIG": str(work / "config.toml"),
           "SCROB_LASTFM_API_URL": fake.url, "SCROB_LASTFM_USER": USER,
           "SCROB_LASTFM_API_KEY": fake.api_key, "PYTHONPATH": str(ROOT)}
    for name in ("SCROB_LASTFM_API_SECRET", "SCROB_LASTFM_SESSION_KEY"):
        env.pop(name, None)
    if rate is not None:
        env["SCROB_LASTFM_RATE"] = str(rate)
    head = [sys.executable, "-c", SEQUENTIAL] if sequential else \
        [sys.executable, "-m", "scrobbler_cli"]
    out_path, err_path = work / "out.json", work / "err.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.Popen([*head, "--quiet", "sync", "lastfm", "--json"], env=env,
                                stdout=out, stderr=err, cwd=ROOT)
        memory = PeakRss(proc.pid)
        proc.wait()
        took = time.perf_counter() - start
        peak = int(memory.stop() * 1024)  # KiB, scrob and its writer process
        print(f"  (peak RSS per process, MB: {memory.each()})")
        after = os.times()
        summary_cpu = (after.children_user - before.children_user
                       + after.children_system - before.children_system)
    if proc.returncode != 0:
        sys.exit(f"scrob failed ({proc.returncode}): {err_path.read_text()[-2000:]}")
    summary = json.loads(out_path.read_text())
    summary["cpu_seconds"] = round(summary_cpu, 2)
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    return took, summary, peak


def throughput(n: int, work: Path, repeat: int) -> None:
    print(f"throughput: full sync of {n:,} listens, no latency, rate unthrottled")
    times = []
    with FakeLastfm() as fake:
        load(fake, n)
        for _ in range(repeat):  # each into a new archive
            took, summary, peak = run_sync(fake, work, rate=1_000_000)
            assert summary["fetched"] == n and summary["new"] == n, summary
            times.append(took)
            print(f"  {took:.2f}s wall for {summary['requests']} requests = "
                  f"{n / took:,.0f} listens/s (scrob CPU {summary['cpu_seconds']:.1f}s, "
                  f"peak RSS {peak / 1024:.0f} MB)")
    took = statistics.median(times)
    print(f"  median of {repeat}: {took:.2f}s = {n / took:,.0f} listens/s  (target >= 40,000/s)")


def latency(n: int, work: Path) -> None:
    print(f"latency: {n:,} listens, 250 ms per request, 5 requests/s")
    with FakeLastfm() as fake:
        load(fake, n)
        fake.latency = 0.25
        for label, sequential in (("concurrent (scrob)", False), ("one page at a time", True)):
            took, summary, _ = run_sync(fake, work, sequential=sequential)
            ideal = summary["requests"] / 5
            print(f"  {label}: {took:.2f}s wall for {summary['requests']} requests; "
                  f"requests/5 = {ideal:.1f}s; {ideal / took:.0%} of the rate limit"
                  + ("  (target: wall within 10% of requests/5)" if not sequential
                     else "  (expected about 80%)"))


def rss(n: int, work: Path) -> None:
    print(f"rss: full sync of {n:,} listens, rate unthrottled")
    with FakeLastfm() as fake:
        load(fake, n)
        took, summary, peak = run_sync(fake, work, rate=1_000_000)
    assert summary["fetched"] == n, summary
    print(f"  peak RSS of scrob and its writer process {peak / 1024:.0f} MB ({took:.1f}s, "
          f"{n / took:,.0f} listens/s, scrob CPU {summary['cpu_seconds']:.0f}s)"
          "  (target <= 150 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("throughput", "latency", "rss"), action="append")
    parser.add_argument("--listens", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="throughput syncs to time (the median is the figure)")
    parser.add_argument("--latency-listens", type=int, default=20_000)
    parser.add_argument("--rss-listens", type=int, default=1_000_000)
    opts = parser.parse_args()
    parts = opts.only or ["throughput", "latency", "rss"]
    with tempfile.TemporaryDirectory(prefix="scrob-lastfm-bench-") as tmp:
        work = Path(tmp)
        if "throughput" in parts:
            throughput(opts.listens, work, max(1, opts.repeat))
        if "latency" in parts:
            latency(opts.latency_listens, work)
        if "rss" in parts:
            rss(opts.rss_listens, work)


if __name__ == "__main__":
    main()
