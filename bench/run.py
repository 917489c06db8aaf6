"""Side-by-side benchmark of artifact-store and CNCF distribution on loopback.

Usage: ``python -m bench.run [--quick]
[--servers artifact-store,artifact-store+granian,distribution] [--only GROUPS]
[--repeats N] [--json PATH]``.

Strategy: the registries run at once, each on its own port and data
directory, and every repeat measures them back to back (artifact-store on
each ASGI server, then distribution, then the next repeat), so drift in the
shared machine's load hits all alike. Each figure is the median of the
repeats. A ratio is always "how many times better this artifact-store is
than distribution": throughput over throughput, or the peer's time over ours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import blobs, fixtures, load
from bench.servers import (
    DISTRIBUTION_BINARY,
    RegistryProcess,
    RssSampler,
    artifact_store,
    distribution,
)

MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    blob: int
    chunk: int
    tag_counts: tuple[int, ...]
    duration: float
    connections: int
    repeats: int
    listings: int


FULL = Sizes(1 << 30, 64 * MIB, (1000, 10000), 10.0, 64, 3, 5)
QUICK = Sizes(8 * MIB, 2 * MIB, (20, 50), 1.0, 8, 1, 2)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: float | None


PEER = "distribution"
# Server names on the command line: artifact-store served with each set of
# options compared (the ASGI server, the upload cache, worker processes),
# and the peer.
_VARIANTS: dict[str, tuple[str, ...]] = {
    "": (),
    "+granian": ("--server", "granian"),
    "+drop": ("--upload-cache", "drop"),
    "+granian+drop": ("--server", "granian", "--upload-cache", "drop"),
}
ARTIFACT_STORES: dict[str, tuple[str, ...]] = {
    f"artifact-store{variant}{workers}": (*options, *worker_options)
    for variant, options in _VARIANTS.items()
    for workers, worker_options in (("", ()), ("+2w", ("--workers", "2")))
}
GROUPS = ("push", "pull", "requests", "tags")


@dataclass
class Results:
    metrics: list[Metric] = field(default_factory=list)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)

    def add(self, metric: Metric, server: str, value: float) -> None:
        if metric not in self.metrics:
            self.metrics.append(metric)
        self.values.setdefault(metric.key, {}).setdefault(server, []).append(value)
        _log(f"{server}: {metric.label}: {value:.1f} {metric.unit}")

    def median(self, key: str, server: str) -> float | None:
        runs = self.values.get(key, {}).get(server)
        return statistics.median(runs) if runs else None

    def ratio(self, metric: Metric, server: str = "artifact-store") -> float | None:
        ours = self.median(metric.key, server)
        peer = self.median(metric.key, PEER)
        if not ours or not peer:
            return None
        return ours / peer if metric.higher_is_better else peer / ours


def _metrics(sizes: Sizes) -> dict[str, Metric]:
    size = f"{sizes.blob // MIB} MiB"
    metrics = [
        Metric("push_monolithic", f"push {size} blob, POST+PUT", "MiB/s", True, 1.5),
        Metric(
            "push_chunked",
            f"push {size} blob, {sizes.chunk // MIB} MiB PATCHes",
            "MiB/s",
            True,
            1.5,
        ),
        Metric("pull", f"pull {size} blob", "MiB/s", True, 1.2),
        Metric("manifest_get", f"GET manifest by tag, {sizes.connections} conns", "req/s", True, 2),
        Metric("blob_head", f"HEAD blob, {sizes.connections} conns", "req/s", True, 2),
    ]
    metrics += [
        Metric(f"tags_{n}", f"tags list, {n} tags", "ms", False, 2) for n in sizes.tag_counts
    ]
    # How far RSS rose above its level before a transfer, at worst, while a
    # blob streamed through (push or pull): "flat" means a few MiB, not the blob.
    metrics.append(Metric("rss_stream", f"RSS growth during a {size} transfer", "MiB", False, None))
    metrics.append(Metric("peak_rss", "peak RSS", "MiB", False, None))
    return {m.key: m for m in metrics}


@dataclass
class Target:
    """One registry under test and what setup left on it."""

    server: RegistryProcess
    sampler: RssSampler
    image: fixtures.SmallImage | None = None
    tag_repos: dict[int, str] = field(default_factory=dict)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _prepare(target: Target, sizes: Sizes, client: httpx.Client, *, with_tags: bool) -> None:
    url = target.server.url
    target.image = fixtures.push_small_image(client, url, "bench/small", "latest")
    for count in sizes.tag_counts if with_tags else ():
        _log(f"{target.server.name}: tagging {count} tags")
        repo = f"bench/tags-{count}"
        image = fixtures.push_small_image(client, url, repo, "seed")
        fixtures.tag_many(url, image, count - 1)
        target.tag_repos[count] = repo


def _load(
    url: str, method: str, headers: dict[str, str], sizes: Sizes, choice: str
) -> load.LoadResult:
    use_wrk = method != "HEAD" and (choice == "wrk" or (choice == "auto" and load.wrk_available()))
    if use_wrk:
        return load.wrk_rps(
            url,
            method=method,
            headers=headers,
            connections=sizes.connections,
            duration=sizes.duration,
        )
    return load.socket_rps(
        url, method=method, headers=headers, connections=sizes.connections, duration=sizes.duration
    )


@dataclass(frozen=True)
class Round:
    """What one repeat measures, the same for every server."""

    sizes: Sizes
    metrics: dict[str, Metric]
    results: Results
    repeat: int
    digests: Callable[[int], str]
    load_choice: str
    verify: bool
    groups: frozenset[str]


def _streamed(target: Target, transfer: Callable[[], float]) -> tuple[float, float]:
    """Run ``transfer``; its seconds and how far the server's RSS rose meanwhile, in MiB."""
    before = target.sampler.start_window()
    seconds = transfer()
    return seconds, max(0, target.sampler.window_peak - before) / MIB


def _measure_round(target: Target, job: Round) -> None:
    name, url = target.server.name, target.server.url
    sizes, metrics, results = job.sizes, job.metrics, job.results
    assert target.image is not None
    with httpx.Client(timeout=600.0) as client:
        seed = 2 * job.repeat
        growth = []
        if "push" in job.groups or "pull" in job.groups:
            seconds, rose = _streamed(
                target,
                lambda: blobs.push_monolithic(
                    client, url, "bench/blob", sizes.blob, seed, job.digests(seed)
                ),
            )
            growth.append(rose)
            if "push" in job.groups:
                results.add(metrics["push_monolithic"], name, sizes.blob / MIB / seconds)
        if "push" in job.groups:
            seconds, rose = _streamed(
                target,
                lambda: blobs.push_chunked(
                    client,
                    url,
                    "bench/blob",
                    sizes.blob,
                    seed + 1,
                    job.digests(seed + 1),
                    sizes.chunk,
                ),
            )
            growth.append(rose)
            results.add(metrics["push_chunked"], name, sizes.blob / MIB / seconds)
        if "pull" in job.groups:
            seconds, rose = _streamed(
                target,
                lambda: blobs.pull_socket(
                    url, "bench/blob", job.digests(seed), sizes.blob, verify=job.verify
                ),
            )
            growth.append(rose)
            results.add(metrics["pull"], name, sizes.blob / MIB / seconds)
        if growth:
            results.add(metrics["rss_stream"], name, max(growth))

        if "requests" in job.groups:
            manifest_url = f"{url}/v2/{target.image.repo}/manifests/latest"
            accept = {"Accept": fixtures.OCI_MANIFEST}
            got = _load(manifest_url, "GET", accept, sizes, job.load_choice)
            results.add(metrics["manifest_get"], name, got.requests_per_second)
            results.tools["manifest_get"] = got.tool
            head_url = f"{url}/v2/{target.image.repo}/blobs/{target.image.layer_digest}"
            got = _load(head_url, "HEAD", {}, sizes, job.load_choice)
            results.add(metrics["blob_head"], name, got.requests_per_second)
            results.tools["blob_head"] = got.tool

        if "tags" not in job.groups:
            return
        for count, repo in target.tag_repos.items():
            timings = []
            for _ in range(sizes.listings):
                tags, seconds = fixtures.list_all_tags(client, url, repo)
                if len(tags) != count:
                    raise blobs.TransferError(f"{repo}: listed {len(tags)} tags, not {count}")
                timings.append(seconds * 1000)
            results.add(metrics[f"tags_{count}"], name, statistics.median(timings))


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    peer = "absent"
    if Path(DISTRIBUTION_BINARY).exists():
        out = subprocess.run(
            [DISTRIBUTION_BINARY, "--version"], capture_output=True, text=True, check=False
        )
        peer = out.stdout.strip() or out.stderr.strip()
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "system": platform.platform(),
        "distribution": peer,
    }


def _short(server: str) -> str:
    if server not in ARTIFACT_STORES:
        return server
    return server.removeprefix("artifact-store").removeprefix("+") or "hypercorn"


def report(results: Results, servers: list[str]) -> str:
    ours = [s for s in servers if s != PEER]
    compared = ours if PEER in servers else []
    head = f"{'measurement':44} {'unit':6}"
    head += "".join(f" {_short(s):>12}" for s in servers)
    head += "".join(f" {'x ' + _short(s):>12}" for s in compared)
    head += f" {'target':>7}"
    lines = [head, "-" * len(head)]
    for metric in results.metrics:
        row = f"{metric.label:44} {metric.unit:6}"
        for server in servers:
            value = results.median(metric.key, server)
            row += f" {'-' if value is None else f'{value:.1f}':>12}"
        marks = []
        for server in compared:
            ratio = results.ratio(metric, server)
            row += f" {'-' if ratio is None else f'{ratio:.2f}x':>12}"
            if metric.target is not None and ratio is not None:
                marks.append("ok" if ratio >= metric.target else "MISS")
        if metric.target is not None:
            row += f" {f'>={metric.target}x':>7} {'/'.join(marks)}"
        lines.append(row)
    lines.append(
        "hypercorn, granian: artifact-store on that ASGI server; +drop: with "
        "--upload-cache drop; x NAME: how many times better it is than distribution "
        "(throughput, or time taken)"
    )
    for key, tool in sorted(results.tools.items()):
        lines.append(f"load generator for {key}: {tool}")
    return "\n".join(lines)


@contextlib.contextmanager
def _start(name: str, root: Path) -> Iterator[RegistryProcess]:
    directory = root / name.replace("-", "_").replace("+", "_")
    if name in ARTIFACT_STORES:
        with artifact_store(directory, name=name, options=ARTIFACT_STORES[name]) as server:
            yield server
    else:
        with distribution(directory) as server:
            yield server


def run(
    sizes: Sizes,
    servers: list[str],
    load_choice: str,
    verify: bool,
    workdir: Path,
    groups: frozenset[str] = frozenset(GROUPS),
) -> Results:
    metrics = _metrics(sizes)
    results = Results()
    digest_cache: dict[int, str] = {}

    def digests(seed: int) -> str:
        if seed not in digest_cache:
            digest_cache[seed] = blobs.blob_digest(sizes.blob, seed)
        return digest_cache[seed]

    with contextlib.ExitStack() as stack:
        targets = []
        for name in servers:
            server = stack.enter_context(_start(name, workdir))
            assert server.pid is not None
            sampler = stack.enter_context(RssSampler(server.pid))
            targets.append(Target(server, sampler))
        with httpx.Client(timeout=60.0) as client:
            for target in targets:
                _prepare(target, sizes, client, with_tags="tags" in groups)
        for repeat in range(sizes.repeats):
            job = Round(sizes, metrics, results, repeat, digests, load_choice, verify, groups)
            # Each repeat starts one server later: the machine's state drifts over
            # a run (the page cache fills, "The page cache, measured further" in
            # docs/PERFORMANCE.md), and no server should always meet it at the
            # same point.
            start = repeat % len(targets)
            for target in targets[start:] + targets[:start]:
                _log(f"repeat {repeat + 1}/{sizes.repeats}: {target.server.name}")
                _measure_round(target, job)
        for target in targets:
            results.add(metrics["peak_rss"], target.server.name, target.sampler.peak / MIB)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated, of {', '.join(ARTIFACT_STORES)} (on Hypercorn unless "
        "+granian) and distribution; default: artifact-store and, when installed, distribution",
    )
    parser.add_argument(
        "--only", default=None, help=f"comma-separated groups of {','.join(GROUPS)}; default: all"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--load", choices=["auto", "wrk", "socket"], default="auto")
    parser.add_argument("--verify", action="store_true", help="hash pulled blobs")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    if args.servers is None:
        servers = ["artifact-store"]
        if Path(DISTRIBUTION_BINARY).exists():
            servers.append("distribution")
    else:
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - {*ARTIFACT_STORES, PEER}
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    groups = frozenset(GROUPS if args.only is None else args.only.split(","))
    if groups - set(GROUPS):
        parser.error(f"unknown groups: {', '.join(sorted(groups - set(GROUPS)))}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results = run(sizes, servers, args.load, args.verify or args.quick, Path(tmp), groups)
    info = machine()
    print("\n".join(f"{k}: {v}" for k, v in info.items()))
    print(report(results, servers))
    if args.json is not None:
        payload = {
            "machine": info,
            "sizes": sizes.__dict__,
            "tools": results.tools,
            "metrics": [
                {
                    **m.__dict__,
                    "runs": results.values.get(m.key, {}),
                    "medians": {s: results.median(m.key, s) for s in servers},
                    "ratio": results.ratio(m),
                    "ratios": {s: results.ratio(m, s) for s in servers if s != PEER},
                }
                for m in results.metrics
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=list))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
