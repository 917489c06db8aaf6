"""Ingest benchmark: the CLI pushing and pulling (1) 1,000 small files, (2) one large file.

Runs ``artifact-store serve`` as a subprocess (SQLite + a local directory)
and times ``artifact-store push`` / ``pull`` as a user runs them, including
hashing on the client and the CLI's start-up. Each run gets a fresh server,
data directory and freshly random files; the report gives every run and
the median of the runs. Usage::

    python -m bench.ingest [--small-files 1000] [--large-gib 2] [--workers 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.servers import artifact_store, artifact_store_command

MIB = 1024 * 1024


def _cli(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([*artifact_store_command(), *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def _small(root: Path, count: int) -> int:
    total = 0
    for i in range(count):
        path = root / f"d{i % 20:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(1024 + (i * 37) % 8192)
        path.write_bytes(data)
        total += len(data)
    return total


def _large(root: Path, size: int) -> int:
    root.mkdir(parents=True)
    with (root / "large.bin").open("wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MIB)
            fh.write(os.urandom(n))
            left -= n
    return size


def _case(name: str, src: Path, server: str, work: Path, workers: int) -> tuple[float, ...]:
    env = {**os.environ, "ARTIFACT_STORE_SERVER": server, "XDG_CACHE_HOME": str(work / "cache")}
    w = str(workers)
    push = _cli("push", str(src), f"bench/{name}:1", "--workers", w, env=env)
    again = _cli("push", str(src), f"bench/{name}:1", "--workers", w, env=env)
    pull = _cli("pull", f"bench/{name}:1", str(work / f"out-{name}"), "--workers", w, env=env)
    return push, again, pull


def _report(name: str, mib: float, count: int, times: tuple[float, ...], label: str) -> None:
    push, again, pull = times
    rate = f" {count / push:6.1f} files/s |" if count > 1 else ""
    print(
        f"{name:>6} {label:>7}: {mib:8.1f} MiB | push {push:6.2f} s ({mib / push:7.1f} MiB/s)"
        f"{rate} re-push {again:5.2f} s | pull {pull:6.2f} s ({mib / pull:7.1f} MiB/s)",
        flush=True,
    )


def _runs(name: str, runs: int, make: Callable[[Path], tuple[int, int]], workers: int) -> None:
    results: list[tuple[float, ...]] = []
    mib, count = 0.0, 1
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
            work = Path(tmp)
            total, count = make(work / name)
            mib = total / MIB
            with artifact_store(work / "data") as server:
                times = _case(name, work / name, server.url, work, workers)
            _report(name, mib, count, times, f"run {run + 1}")
            results.append(times)
    medians = tuple(statistics.median(column) for column in zip(*results, strict=True))
    _report(name, mib, count, medians, "median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--large-gib", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.small_files:
        _runs("small", args.runs, lambda root: (_small(root, args.small_files),
                                                  args.small_files), args.workers)  # fmt: skip
    if args.large_gib:
        size = int(args.large_gib * 1024 * MIB)
        _runs("large", args.runs, lambda root: (_large(root, size), 1), args.workers)


if __name__ == "__main__":
    main()
