"""A client load loop for the GC bench: pushes and pulls against a served registry.

Push workers each push a fresh small image (a config and a layer, both unique,
monolithic ``POST`` + ``PUT``, then the manifest under a new tag); pull
workers fetch a random tag GC must keep (manifest, config and first layer,
digests checked). Each completed operation's time is logged, so the caller
can take the rate in any window afterwards (before GC, while GC runs). Any
unexpected answer is logged as an error with its time and the loop goes on:
a GC that broke a push or pull must show up in the figures, not abort them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

__all__ = ["LoadLog", "run_load"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class LoadLog:
    pushes: list[float] = field(default_factory=list)  # time.monotonic() at completion
    pulls: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)

    def rate(self, kind: str, start: float, end: float) -> float:
        times = self.pushes if kind == "push" else self.pulls
        return sum(1 for t in times if start <= t < end) / max(end - start, 1e-9)

    def errors_in(self, start: float, end: float) -> list[str]:
        return [what for t, what in self.errors if start <= t < end]


class _Unexpected(Exception):
    pass


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise _Unexpected(
            f"{response.request.method} {response.request.url.path}: {response.status_code}"
        )
    return response


async def _push_blob(client: httpx.AsyncClient, base: str, repo: str, data: bytes) -> str:
    digest = _digest(data)
    opened = _check(await client.post(f"{base}/v2/{repo}/blobs/uploads/"), 202)
    location = urljoin(f"{base}/", opened.headers["location"])
    separator = "&" if "?" in location else "?"
    _check(
        await client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        ),
        201,
    )
    return digest


async def _push(client: httpx.AsyncClient, base: str, repo: str, tag: str) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": tag}).encode()
    layer = os.urandom(1024)
    config_digest = await _push_blob(client, base, repo, config)
    layer_digest = await _push_blob(client, base, repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    _check(
        await client.put(
            f"{base}/v2/{repo}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        ),
        201,
    )


async def _pull(client: httpx.AsyncClient, base: str, repo: str, tag: str) -> None:
    response = _check(
        await client.get(f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}),
        200,
    )
    document = response.json()
    for descriptor in (document["config"], document["layers"][0]):
        blob = _check(await client.get(f"{base}/v2/{repo}/blobs/{descriptor['digest']}"), 200)
        if _digest(blob.content) != descriptor["digest"]:
            raise _Unexpected(f"GET {descriptor['digest']}: wrong bytes")


async def run_load(
    base: str,
    tags: list[tuple[str, str]],
    stop: asyncio.Event,
    log: LoadLog,
    *,
    push_workers: int = 2,
    pull_workers: int = 2,
) -> None:
    """Push and pull until ``stop`` is set, logging into ``log``."""
    limits = httpx.Limits(max_connections=push_workers + pull_workers)
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:

        async def pusher(worker: int) -> None:
            repo, n = f"load/w{worker}", 0
            while not stop.is_set():
                n += 1
                try:
                    await _push(client, base, repo, f"p{n}-{random.getrandbits(32):08x}")
                except (_Unexpected, httpx.HTTPError) as exc:
                    log.errors.append((time.monotonic(), f"push: {exc}"))
                    await asyncio.sleep(0.05)
                else:
                    log.pushes.append(time.monotonic())

        async def puller() -> None:
            while not stop.is_set():
                repo, tag = random.choice(tags)
                try:
                    await _pull(client, base, repo, tag)
                except (_Unexpected, httpx.HTTPError) as exc:
                    log.errors.append((time.monotonic(), f"pull {repo}:{tag}: {exc}"))
                    await asyncio.sleep(0.05)
                else:
                    log.pulls.append(time.monotonic())

        await asyncio.gather(
            *(pusher(w) for w in range(push_workers)), *(puller() for _ in range(pull_workers))
        )
