"""What the benchmark reads must exist first: a small image and tagged repositories.

Setup is not timed. It goes through the public API only, so the same code
prepares any registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from bench.blobs import TransferError

__all__ = ["OCI_MANIFEST", "SmallImage", "list_all_tags", "push_small_image", "tag_many"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class SmallImage:
    repo: str
    manifest: bytes
    manifest_digest: str
    layer_digest: str


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _push_bytes(client: httpx.Client, base_url: str, repo: str, data: bytes) -> str:
    digest = _digest(data)
    response = client.post(f"{base_url}/v2/{repo}/blobs/uploads/")
    if response.status_code != 202:
        raise TransferError(f"POST upload answered {response.status_code}")
    location = urljoin(str(response.request.url), response.headers["location"])
    separator = "&" if "?" in location else "?"
    response = client.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if response.status_code != 201:
        raise TransferError(f"PUT upload answered {response.status_code}: {response.text}")
    return digest


def push_small_image(client: httpx.Client, base_url: str, repo: str, tag: str) -> SmallImage:
    """A one-layer OCI image: the manifest GET and blob HEAD targets."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = b"bench layer\n" * 100
    config_digest = _push_bytes(client, base_url, repo, config)
    layer_digest = _push_bytes(client, base_url, repo, layer)
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
        },
        separators=(",", ":"),
    ).encode()
    response = client.put(
        f"{base_url}/v2/{repo}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    if response.status_code != 201:
        raise TransferError(f"PUT manifest answered {response.status_code}: {response.text}")
    return SmallImage(repo, manifest, _digest(manifest), layer_digest)


async def _tag_many(base_url: str, image: SmallImage, tags: list[str], concurrency: int) -> None:
    queue = list(reversed(tags))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            while queue:
                tag = queue.pop()
                response = await client.put(
                    f"{base_url}/v2/{image.repo}/manifests/{tag}",
                    content=image.manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                if response.status_code != 201:
                    raise TransferError(f"PUT manifest {tag} answered {response.status_code}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def tag_many(base_url: str, image: SmallImage, count: int, concurrency: int = 16) -> list[str]:
    """Point ``count`` tags at the image's manifest; returns them in lexical order."""
    tags = [f"t{i:06d}" for i in range(count)]
    asyncio.run(_tag_many(base_url, image, tags, concurrency))
    return tags


def list_all_tags(client: httpx.Client, base_url: str, repo: str) -> tuple[list[str], float]:
    """GET the tags list, following ``Link`` pages; returns the tags and the seconds.

    Following pages keeps the comparison fair if one registry paginates by
    default: the figure is always the time to learn every tag. The clock
    covers the HTTP exchanges only; decoding the JSON comes after it, so the
    client's parsing (the same work whichever registry answered) does not
    dilute the difference between the registries.
    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
    """
    bodies: list[bytes] = []
    url: str | None = f"{base_url}/v2/{repo}/tags/list"
    started = time.perf_counter()
    while url is not None:
        response = client.get(url)
        if response.status_code != 200:
            raise TransferError(f"GET tags answered {response.status_code}")
        bodies.append(response.content)
        next_link = response.links.get("next", {}).get("url")
        url = urljoin(url, next_link) if next_link else None
    elapsed = time.perf_counter() - started
    tags: list[str] = []
    for body in bodies:
        tags.extend(json.loads(body)["tags"])
    return tags, elapsed
