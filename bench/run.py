"""Side-by-side benchmark of artifact-store and CNCF distribution on loopback.

Usage: ``python -m bench.run [--quick] [--servers artifact-store,distribution]
[--repeats N] [--json PATH]``.

Strategy: both registries run at once, each on its own port and data
directory, and every repeat measures them back to back (artifact-store, then
distribution, then the next repeat), so drift in the shared machine's load
hits both alike. Each figure is the median of the repeats. The ratio is
always "how many times better artifact-store is": throughput over throughput,
or the peer's time over ours.
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

    def ratio(self, metric: Metric) -> float | None:
        ours = self.median(metric.key, "artifact-store")
        peer = self.median(metric.key, "distribution")
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


def _prepare(target: Target, sizes: Sizes, client: httpx.Client) -> None:
    url = target.server.url
    target.image = fixtures.push_small_image(client, url, "bench/small", "latest")
    for count in sizes.tag_counts:
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


def _measure_round(
    target: Target,
    sizes: Sizes,
    metrics: dict[str, Metric],
    results: Results,
    repeat: int,
    digests: Callable[[int], str],
    load_choice: str,
    verify: bool,
) -> None:
    name, url = target.server.name, target.server.url
    assert target.image is not None
    with httpx.Client(timeout=600.0) as client:
        seed = 2 * repeat
        seconds = blobs.push_monolithic(client, url, "bench/blob", sizes.blob, seed, digests(seed))
        results.add(metrics["push_monolithic"], name, sizes.blob / MIB / seconds)
        seconds = blobs.push_chunked(
            client, url, "bench/blob", sizes.blob, seed + 1, digests(seed + 1), sizes.chunk
        )
        results.add(metrics["push_chunked"], name, sizes.blob / MIB / seconds)
        seconds = blobs.pull(client, url, "bench/blob", digests(seed), sizes.blob, verify=verify)
        results.add(metrics["pull"], name, sizes.blob / MIB / seconds)

        manifest_url = f"{url}/v2/{target.image.repo}/manifests/latest"
        got = _load(manifest_url, "GET", {"Accept": fixtures.OCI_MANIFEST}, sizes, load_choice)
        results.add(metrics["manifest_get"], name, got.requests_per_second)
        results.tools["manifest_get"] = got.tool
        head_url = f"{url}/v2/{target.image.repo}/blobs/{target.image.layer_digest}"
        got = _load(head_url, "HEAD", {}, sizes, load_choice)
        results.add(metrics["blob_head"], name, got.requests_per_second)
        results.tools["blob_head"] = got.tool

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


def report(results: Results, servers: list[str]) -> str:
    head = f"{'measurement':44} {'unit':6}"
    head += "".join(f" {s:>15}" for s in servers)
    head += f" {'ratio':>7} {'target':>7}"
    lines = [head, "-" * len(head)]
    for metric in results.metrics:
        row = f"{metric.label:44} {metric.unit:6}"
        for server in servers:
            value = results.median(metric.key, server)
            row += f" {'-' if value is None else f'{value:.1f}':>15}"
        ratio = results.ratio(metric)
        row += f" {'-' if ratio is None else f'{ratio:.2f}x':>7}"
        if metric.target is not None:
            mark = "" if ratio is None else (" ok" if ratio >= metric.target else " MISS")
            row += f" {f'>={metric.target}x':>7}{mark}"
        lines.append(row)
    lines.append("ratio: how many times better artifact-store is (throughput, or time taken)")
    for key, tool in sorted(results.tools.items()):
        lines.append(f"load generator for {key}: {tool}")
    return "\n".join(lines)


@contextlib.contextmanager
def _start(name: str, root: Path) -> Iterator[RegistryProcess]:
    starter = artifact_store if name == "artifact-store" else distribution
    with starter(root / name.replace("-", "_")) as server:
        yield server


def run(sizes: Sizes, servers: list[str], load_choice: str, verify: bool, workdir: Path) -> Results:
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
                _prepare(target, sizes, client)
        for repeat in range(sizes.repeats):
            for target in targets:
                _log(f"repeat {repeat + 1}/{sizes.repeats}: {target.server.name}")
                _measure_round(
                    target, sizes, metrics, results, repeat, digests, load_choice, verify
                )
        for target in targets:
            results.add(metrics["peak_rss"], target.server.name, target.sampler.peak / MIB)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--servers", default=None, help="comma-separated; default: both")
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
    unknown = set(servers) - {"artifact-store", "distribution"}
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results = run(sizes, servers, args.load, args.verify or args.quick, Path(tmp))
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
                }
                for m in results.metrics
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=list))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
