"""Push and pull one large blob through the S3 backend, proxied and redirected,
beside the filesystem backend.

    ARTIFACT_STORE_S3_ACCESS_KEY=… ARTIFACT_STORE_S3_SECRET_KEY=… \\
    python -m bench.s3 --s3-url 's3://bucket/bench?endpoint=http://127.0.0.1:8333' [--size-mib 1024]

Three servers are started in turn (SQLite metadata each): filesystem blobs;
S3 blobs served through the registry; S3 blobs with ``--redirect-blobs``, where
a pull is a 307 to a presigned URL and the bytes come from the object store.
Each run pushes a fresh blob (a different seed, so nothing is deduplicated)
monolithically, pulls it back, and deletes it from the store; the medians of
``--runs`` runs are printed. The bucket must exist.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx

from bench.blobs import blob_digest, pull, push_monolithic
from bench.servers import _launch, artifact_store_command, free_port
from oci.digest import Digest
from storage.url import open_store

MiB = 1024 * 1024


@contextlib.contextmanager
def _server(workdir: Path, storage_url: str, *extra: str) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    argv = [
        *artifact_store_command(), "serve", "--listen", address, "--data-dir", str(workdir),
        "--storage-url", storage_url, *extra,
    ]  # fmt: skip
    with _launch("artifact-store", argv, f"http://{address}", workdir / "serve.log", 120.0):
        yield f"http://{address}"


def _measure(
    name: str, workdir: Path, storage_url: str, extra: tuple[str, ...], size: int, runs: int
) -> tuple[str, float, float]:
    workdir.mkdir(parents=True)
    pushes, pulls = [], []
    with (
        _server(workdir, storage_url, *extra) as url,
        httpx.Client(timeout=3600, follow_redirects=True) as client,
    ):
        for run in range(runs):
            seed = zlib.crc32(f"{name}/{run}".encode())  # distinct per case and run
            digest = blob_digest(size, seed)
            pushes.append(push_monolithic(client, url, "bench/s3", size, seed, digest))
            pulls.append(pull(client, url, "bench/s3", digest, size))
            anyio.run(open_store(storage_url).delete, Digest.parse(digest))
    return name, statistics.median(pushes), statistics.median(pulls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3-url", required=True, help="s3://bucket/prefix?endpoint=…")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        root = Path(tmp)
        cases = [
            ("filesystem", str(root / "fs-blobs"), ()),
            ("s3 proxied", args.s3_url, ()),
            ("s3 redirected", args.s3_url, ("--redirect-blobs",)),
        ]
        results = [
            _measure(name, root / f"case{i}", url, extra, size, args.runs)
            for i, (name, url, extra) in enumerate(cases)
        ]
    print(f"{args.size_mib} MiB blob, median of {args.runs} runs")
    print(f"{'backend':<15} {'push s':>8} {'push MiB/s':>11} {'pull s':>8} {'pull MiB/s':>11}")
    for name, push_s, pull_s in results:
        print(
            f"{name:<15} {push_s:>8.2f} {size / MiB / push_s:>11.1f} "
            f"{pull_s:>8.2f} {size / MiB / pull_s:>11.1f}"
        )


if __name__ == "__main__":
    main()
