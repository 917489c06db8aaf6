"""Garbage collection benchmark: mark-and-sweep time and memory, and clients' rates while GC runs.

Usage::

    python -m bench.gc [--blobs 100000] [--manifests 10000] [--runs 3]
                       [--backends sqlite,postgresql] [--postgres URL]
                       [--load-seconds 20] [--no-load] [--json PATH] [--quick]

Strategy. The registry state (``bench.gc_seed``) is built once per metadata
backend and copied for every run, since a run deletes its garbage: SQLite by
copying the database file, PostgreSQL with ``CREATE DATABASE … TEMPLATE``,
the blob directory with hard links (GC only ever unlinks files). Each GC run
is a fresh process (``python -m bench.gc _collect …``) that opens the stores,
then times ``registry.lifecycle.gc.collect`` alone and reports its phases,
its peak RSS (``ru_maxrss``) and the RSS it had before collecting; one extra
run under ``tracemalloc`` gives the peak of Python allocations (tracemalloc
slows the run, so its time is not used). The timed runs collect with
``now`` two grace windows ahead, so one run removes all the garbage,
links first and then their blobs.

The load part serves a fresh copy with ``artifact-store serve``, runs the
``bench.gc_load`` loop (2 push and 2 pull workers) for ``--load-seconds``
without GC, then starts a GC process (real clock, 60 s grace) and keeps the
loop going until it exits. Rates are operations completed per second in each
window; errors are counted (there should be none). Figures are medians over
``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from bench.gc_load import LoadLog, run_load
from bench.gc_seed import Shape, copy_metadata, live_tags, seed_blobs, seed_metadata
from bench.servers import _launch, artifact_store_command, free_port

MIB = 1 << 20
GRACE = 3600.0  # timed runs: the default grace, collected two windows ahead
LOAD_GRACE = 60.0  # load runs: real clock; the seed is older than this


@dataclass
class Results:
    shape: Shape
    json_path: Path | None = None
    gc: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tracemalloc: dict[str, dict[str, Any]] = field(default_factory=dict)
    load: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seed: dict[str, dict[str, float]] = field(default_factory=dict)

    def save(self) -> None:
        """Rewrite the JSON file after every run: a long run that fails late keeps its figures."""
        if self.json_path is None:
            return
        document = {
            "shape": {"blobs": self.shape.blobs, "manifests": self.shape.manifests},
            "seed": self.seed,
            "gc": self.gc,
            "tracemalloc": self.tracemalloc,
            "load": self.load,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        self.json_path.write_text(json.dumps(document, indent=2))


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- one GC run in its own process ---------------------------------------------------------


async def _collect(args: argparse.Namespace) -> dict[str, Any]:
    import datetime as dt
    import tracemalloc

    import psutil

    from registry.config import DatabaseSettings, Settings, StorageSettings
    from registry.lifecycle.gc import collect
    from registry.service.registry import open_registry

    settings = Settings(
        data_dir=args.data_dir,
        database=DatabaseSettings(args.database_url),
        storage=StorageSettings(args.storage_url),
    )
    async with open_registry(settings) as registry:
        now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=args.now_offset)
        rss_before = psutil.Process().memory_info().rss
        if args.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        report = await collect(registry, grace=dt.timedelta(seconds=args.grace), now=now)
        seconds = time.perf_counter() - started
        traced = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    return {
        "seconds": seconds,
        "phases": {name: round(s, 3) for name, s in report.durations.items()},
        "report": report.to_json(),
        "rss_before": rss_before,
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "tracemalloc_peak": traced,
    }


def _collect_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gc _collect")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--storage-url", required=True)
    parser.add_argument("--grace", type=float, required=True)
    parser.add_argument("--now-offset", type=float, default=0.0)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(anyio.run(_collect, args)))


def _collector_argv(run: Run, grace: float, now_offset: float, traced: bool) -> list[str]:
    return [
        sys.executable, "-m", "bench.gc", "_collect", "--data-dir", str(run.root),
        "--database-url", run.database_url, "--storage-url", str(run.blobs),
        "--grace", str(grace), "--now-offset", str(now_offset),
        *(["--tracemalloc"] if traced else []),
    ]  # fmt: skip


def _parse_collector(stdout: str, stderr: str, code: int) -> dict[str, Any]:
    if code != 0:
        raise RuntimeError(f"GC process exited {code}:\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


# -- fresh copies of the seeded state -------------------------------------------------------


@dataclass
class Run:
    root: Path
    database_url: str

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"


class Backend:
    """Where the seeded metadata lives and how a run gets its own copy of it."""

    def __init__(self, name: str, work: Path, postgres: str) -> None:
        self.name = name
        self.work = work
        self.postgres = postgres
        self.seed_db = f"bench_gc_seed_{secrets.token_hex(4)}"
        self._databases: list[str] = []

    def _pg_url(self, database: str) -> str:
        parts = urlsplit(self.postgres)
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.postgres, autocommit=True) as conn:
            conn.execute(sql.encode())  # names are ours, not input

    @property
    def seed_url(self) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.work / 'seed-meta.db'}"
        return self._pg_url(self.seed_db)

    def seed(self) -> tuple[int, float]:
        """Rows in the seed database and the seconds it took (SQLite's file is the seed)."""
        if self.name == "sqlite":
            return 0, 0.0
        self._admin(f'CREATE DATABASE "{self.seed_db}"')
        self._databases.append(self.seed_db)
        return anyio.run(copy_metadata, f"sqlite:///{self.work / 'seed-meta.db'}", self.seed_url)

    @contextlib.contextmanager
    def fresh(self, seed_blobs_dir: Path, index: str) -> Iterator[Run]:
        root = self.work / f"{self.name}-{index}"
        shutil.rmtree(root, ignore_errors=True)  # left by an interrupted run
        root.mkdir()
        subprocess.run(["cp", "-al", str(seed_blobs_dir), str(root / "blobs")], check=True)
        if self.name == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                source = self.work / f"seed-meta.db{suffix}"
                if source.exists():
                    shutil.copyfile(source, root / f"meta.db{suffix}")
            url = f"sqlite:///{root / 'meta.db'}"
        else:
            database = f"{self.seed_db}_{index}"
            self._admin(f'CREATE DATABASE "{database}" TEMPLATE "{self.seed_db}"')
            url = self._pg_url(database)
        try:
            yield Run(root, url)
        finally:
            if self.name == "postgresql":
                self._admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            # rm -rf: shutil.rmtree takes minutes over 100,000 blob directories.
            subprocess.run(["rm", "-rf", str(root)], check=False)

    def close(self) -> None:
        for database in self._databases:
            with contextlib.suppress(Exception):
                self._admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# -- the measurements ------------------------------------------------------------------------


def _check_counts(result: dict[str, Any], shape: Shape, backend: str) -> None:
    got = result["report"]
    expected = {
        "links_removed": shape.expected_links_removed,
        "blobs_deleted": shape.expected_blobs_deleted,
        "orphans_removed": shape.orphans,
    }
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    if wrong:
        _log(f"WARNING {backend}: GC removed other counts than seeded (got, expected): {wrong}")
    result["counts_as_seeded"] = not wrong


def measure_gc(backend: Backend, seed_dir: Path, results: Results, runs: int, traced: bool) -> None:
    for i in range(runs):
        with backend.fresh(seed_dir, f"gc{i}") as run:
            done = subprocess.run(
                _collector_argv(run, GRACE, 2 * GRACE, False),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            result = _parse_collector(done.stdout, done.stderr, done.returncode)
        _check_counts(result, results.shape, backend.name)
        results.gc.setdefault(backend.name, []).append(result)
        results.save()
        _log(
            f"{backend.name}: GC run {i + 1}: {result['seconds']:.1f} s {result['phases']}, "
            f"peak RSS {result['rss_peak'] / MIB:.0f} MiB "
            f"(+{(result['rss_peak'] - result['rss_before']) / MIB:.0f})"
        )
    if traced:
        with backend.fresh(seed_dir, "traced") as run:
            done = subprocess.run(
                _collector_argv(run, GRACE, 2 * GRACE, True),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            result = _parse_collector(done.stdout, done.stderr, done.returncode)
        results.tracemalloc[backend.name] = result
        results.save()
        _log(f"{backend.name}: tracemalloc peak {result['tracemalloc_peak'] / MIB:.1f} MiB")


async def _load_once(run: Run, shape: Shape, seconds: float) -> dict[str, Any]:
    address = f"127.0.0.1:{free_port()}"
    argv = [
        *artifact_store_command(), "serve", "--listen", address, "--data-dir", str(run.root),
        "--database-url", run.database_url, "--storage-url", str(run.blobs),
    ]  # fmt: skip
    with _launch("artifact-store", argv, f"http://{address}", run.root / "serve.log", 120.0):
        log, stop = LoadLog(), asyncio.Event()
        load = asyncio.create_task(run_load(f"http://{address}", live_tags(shape), stop, log))
        await asyncio.sleep(2.0)  # warm-up: connections, caches
        before = (time.monotonic(), time.monotonic() + seconds)
        await asyncio.sleep(seconds)
        collector = await asyncio.create_subprocess_exec(
            *_collector_argv(run, LOAD_GRACE, 0.0, False),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        started = time.monotonic()
        out, err = await collector.communicate()
        during = (started, time.monotonic())
        stop.set()
        await load
    gc = _parse_collector(out.decode(), err.decode(), collector.returncode or 0)
    return {
        "push_before": log.rate("push", *before),
        "push_during": log.rate("push", *during),
        "pull_before": log.rate("pull", *before),
        "pull_during": log.rate("pull", *during),
        "gc_seconds": during[1] - during[0],
        "gc": gc["report"],
        "errors_before": log.errors_in(*before),
        "errors_during": log.errors_in(*during),
        "errors_total": len(log.errors),
    }


def measure_load(
    backend: Backend, seed_dir: Path, results: Results, runs: int, seconds: float, seeded_at: float
) -> None:
    wait = seeded_at + LOAD_GRACE + 1 - time.time()
    if wait > 0:  # the seeded garbage must be older than the load runs' grace
        time.sleep(wait)
    for i in range(runs):
        with backend.fresh(seed_dir, f"load{i}") as run:
            result = asyncio.run(_load_once(run, results.shape, seconds))
        results.load.setdefault(backend.name, []).append(result)
        results.save()
        _log(
            f"{backend.name}: load run {i + 1}: push {result['push_before']:.1f} -> "
            f"{result['push_during']:.1f}/s, pull {result['pull_before']:.1f} -> "
            f"{result['pull_during']:.1f}/s during {result['gc_seconds']:.1f} s of GC, "
            f"{result['errors_total']} errors"
        )


# -- report ---------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_report(results: Results, runs: int) -> None:
    shape = results.shape
    print(
        f"GC: {shape.manifests * shape.per_manifest:,} blobs in {shape.manifests:,} manifests "
        f"(20% garbage, plus {shape.orphans:,} orphaned files), median of {runs}"
    )
    print(
        f"{'backend':<11} {'total s':>8} {'retention':>9} {'links':>7} {'blobs':>7} "
        f"{'orphans':>7} {'peak RSS':>9} {'growth':>7} {'tracemalloc':>11}"
    )
    for name, items in results.gc.items():
        phases = {p: _median([r["phases"][p] for r in items]) for p in items[0]["phases"]}
        peak = _median([r["rss_peak"] / MIB for r in items])
        growth = _median([(r["rss_peak"] - r["rss_before"]) / MIB for r in items])
        traced = results.tracemalloc.get(name, {}).get("tracemalloc_peak")
        traced_text = f"{traced / MIB:>8.1f} MiB" if traced else f"{'-':>11}"
        print(
            f"{name:<11} {_median([r['seconds'] for r in items]):>8.1f} "
            f"{phases['retention']:>9.1f} {phases['links']:>7.1f} {phases['blobs']:>7.1f} "
            f"{phases['orphans']:>7.1f} {peak:>5.0f} MiB {growth:>3.0f} MiB {traced_text}"
        )
    if results.load:
        print(f"\nClients (2 push + 2 pull workers) before and while GC runs, median of {runs}")
        print(
            f"{'backend':<11} {'push/s':>7} {'during':>7} {'ratio':>6} {'pull/s':>7} "
            f"{'during':>7} {'ratio':>6} {'GC s':>6} {'errors':>6}"
        )
        for name, items in results.load.items():
            m = {
                k: _median([r[k] for r in items])
                for k in items[0]
                if isinstance(items[0][k], float)
            }
            print(
                f"{name:<11} {m['push_before']:>7.1f} {m['push_during']:>7.1f} "
                f"{m['push_during'] / m['push_before']:>6.2f} {m['pull_before']:>7.1f} "
                f"{m['pull_during']:>7.1f} {m['pull_during'] / m['pull_before']:>6.2f} "
                f"{m['gc_seconds']:>6.1f} {sum(r['errors_total'] for r in items):>6}"
            )


def _seed(work: Path, shape: Shape, results: Results) -> float:
    """Seed bytes and SQLite metadata into ``work`` unless it holds this shape's seed already."""
    marker = work / "seed.json"
    wanted = {"blobs": shape.blobs, "manifests": shape.manifests}
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded["shape"] == wanted:
            _log(f"reusing the seed in {work}")
            results.seed.update(recorded["seed"])
            return float(recorded["seeded_at"])
    for stale in ("seed-blobs", "seed-meta.db", "seed-meta.db-wal", "seed-meta.db-shm"):
        path = work / stale
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    _log(f"writing {shape.manifests * shape.per_manifest + shape.orphans:,} blob files")
    seconds = seed_blobs(work / "seed-blobs", shape)
    _log("seeding metadata (SQLite, event by event)")
    events, seed_seconds = anyio.run(seed_metadata, f"sqlite:///{work / 'seed-meta.db'}", shape)
    seeded_at = time.time()
    results.seed["sqlite"] = {"events": events, "seconds": seed_seconds, "bytes": seconds}
    _log(f"{events:,} events in {seed_seconds:.0f} s")
    document = {"shape": wanted, "seed": results.seed, "seeded_at": seeded_at}
    marker.write_text(json.dumps(document))
    return seeded_at


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_collect":
        _collect_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (medians)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "ARTIFACT_STORE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL: the bench creates and drops its own databases",
    )
    parser.add_argument("--load-seconds", type=float, default=20.0)
    parser.add_argument("--no-load", action="store_true", help="skip the clients-while-GC part")
    parser.add_argument(
        "--tracemalloc",
        default="sqlite",
        help="backends that get one extra run under tracemalloc (slow: ~4x); '' for none",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 blobs, one run, short load")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the seeded state here and reuse it when the shape matches (default: a temp dir)",
    )
    args = parser.parse_args()
    if args.quick:
        args.blobs, args.manifests, args.runs, args.load_seconds = 2000, 200, 1, 3.0
    shape = Shape(args.blobs, args.manifests)
    results = Results(shape, args.json)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gc-")))
        else:
            work = args.workdir
            work.mkdir(parents=True, exist_ok=True)
        seeded_at = _seed(work, shape, results)
        for name in backends:
            backend = Backend(name, work, args.postgres)
            try:
                copied, copy_seconds = backend.seed()
                if copied:
                    results.seed[name] = {"rows": copied, "seconds": copy_seconds}
                    _log(f"{name}: copied {copied:,} rows in {copy_seconds:.0f} s")
                traced = name in args.tracemalloc.split(",")
                measure_gc(backend, work / "seed-blobs", results, args.runs, traced)
                if not args.no_load:
                    measure_load(
                        backend,
                        work / "seed-blobs",
                        results,
                        args.runs,
                        args.load_seconds,
                        seeded_at,
                    )
            finally:
                backend.close()
    print_report(results, args.runs)


if __name__ == "__main__":
    main()
