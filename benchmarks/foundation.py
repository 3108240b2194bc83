"""Whole-process figures for the foundation: import, stats and start-up.

    python3 benchmarks/foundation.py [--listens 1000000]

Builds a synthetic archive (see synthetic.py), then times the real `scrob` command in
fresh processes and prints one line per figure with its target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from memory import PeakRss  # noqa: E402
from synthetic import write_ndjson  # noqa: E402


def timed(args: list[str], env: dict[str, str], repeat: int = 1) -> tuple[float, str]:
    times = []
    out = ""
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(args, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out = proc.stdout
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listens", type=int, default=1_000_000)
    parser.add_argument("--keep", help="directory to keep the files in")
    opts = parser.parse_args()
    work = Path(opts.keep or tempfile.mkdtemp(prefix="scrob-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "history.ndjson"
    db = work / "archive.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    env = {**os.environ, "SCROB_DB": str(db), "SCROB_CONFIG": str(work / "config.toml")}
    scrob = [sys.executable, "-m", "scrobbler_cli"]

    t0 = time.perf_counter()
    write_ndjson(str(data), opts.listens)
    print(f"generated {opts.listens:,} listens in {time.perf_counter() - t0:.1f}s "
          f"({data.stat().st_size / 1e6:.0f} MB)")

    start = time.perf_counter()
    proc = subprocess.Popen([*scrob, "--quiet", "import", str(data)], env=env,
                            stderr=subprocess.PIPE, text=True)
    memory = PeakRss(proc.pid)
    _, err = proc.communicate()
    took = time.perf_counter() - start
    rss = memory.stop()
    if proc.returncode != 0:
        sys.exit(f"import failed ({proc.returncode}): {err[-2000:]}")
    rate = opts.listens / took
    print(f"import: {took:.2f}s = {rate:,.0f} listens/s  (target >= 100,000/s); "
          f"peak RSS {rss:.0f} MB, scrob and its writer process ({memory.each()})")
    print(f"archive size: {db.stat().st_size / 1e6:.0f} MB")

    for rng, target in (("all", 0.4), ("year", 0.25)):
        took, out = timed([*scrob, "stats", "--range", rng, "--json"], env, repeat=5)
        print(f"stats --range {rng} --json: {took:.3f}s median of 5  (target <= {target}s)")
    took, _ = timed([*scrob, "--version"], env, repeat=9)
    print(f"--version: {took:.3f}s median of 9  (target <= 0.1s)")
    took, _ = timed([sys.executable, "-c", "pass"], env, repeat=9)
    print(f"(bare python start-up on this machine: {took:.3f}s)")


if __name__ == "__main__":
    main()
