"""The cost of auth: token issuance rate, and manifest GET req/s with auth on vs off.

Usage: ``python -m bench.auth [--seconds S] [--database URL]``.

Everything runs in one process through ``httpx.ASGITransport`` (no sockets),
so the numbers isolate what the middleware adds: authenticating the
request, evaluating policies, and (with ``--rate``) one bucket write per
request. Three manifest-GET runs share one pushed image: auth off, auth on
with a bearer token from ``/token``, auth on with Basic credentials (after
the first, the argon2 check is served from the process's 30 s cache).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from oci.digest import Digest
from registry.auth import Authority, AuthStore
from registry.config import AuthSettings, DatabaseSettings, Settings
from registry.http.app import create_app
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore

BASE = "http://bench.test"
PASSWORD = "bench-password-1"


async def _rate(seconds: float, call: Callable[[], Awaitable[None]]) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await call()
        done += 1
    return done / (time.perf_counter() - start)


async def _push(client: httpx.AsyncClient, repo: str) -> str:
    config, layer = b"{}", b"bench layer"
    for data in (config, layer):
        digest = Digest.compute(data)
        r = await client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": str(digest)}, content=data
        )
        assert r.status_code == 201, r.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(Digest.compute(config)),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": str(Digest.compute(layer)),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    r = await client.put(
        f"/v2/{repo}/manifests/v1",
        content=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text
    return str(Digest.compute(manifest))


async def main(seconds: float, database: str | None, rate: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    url = database or f"sqlite:///{tmp}/meta.db"
    meta = await MetadataStore.open(url)
    results: dict[str, Any] = {"database": url.split(":", 1)[0], "seconds": seconds}
    try:
        off = Settings(data_dir=str(tmp), database=DatabaseSettings(url))
        on = Settings(
            data_dir=str(tmp),
            database=DatabaseSettings(url),
            auth=AuthSettings(enabled=True, rate_per_second=rate, rate_burst=10**9),
        )
        store = AuthStore.open(url)
        authority = Authority(store, on)
        await store.add_user("bench", PASSWORD, tenant="acme", roles=["maintainer"], actor="bench")
        blobs = FsBlobStore(tmp / "blobs")
        plain_app = create_app(off, Registry(meta, blobs, off))
        auth_app = create_app(on, Registry(meta, blobs, on), auth=authority)
        plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=plain_app), base_url=BASE)
        basic = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=auth_app), base_url=BASE, auth=("bench", PASSWORD)
        )
        digest = await _push(plain, "acme/app")
        path = f"/v2/acme/app/manifests/{digest}"
        params = {"service": "artifact-store", "scope": "repository:acme/app:pull"}

        async def issue() -> None:
            r = await basic.get("/token", params=params)
            assert r.status_code == 200

        token = (await basic.get("/token", params=params)).json()["token"]
        bearer = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=auth_app),
            base_url=BASE,
            headers={"Authorization": f"Bearer {token}"},
        )

        def get(client: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                r = await client.get(path)
                assert r.status_code == 200, r.text

            return call

        results["token_issuance_per_s"] = round(await _rate(seconds, issue), 1)
        results["manifest_get_auth_off_per_s"] = round(await _rate(seconds, get(plain)), 1)
        results["manifest_get_bearer_per_s"] = round(await _rate(seconds, get(bearer)), 1)
        results["manifest_get_basic_per_s"] = round(await _rate(seconds, get(basic)), 1)
        results["rate_limit_per_s"] = rate
        off_rate = results["manifest_get_auth_off_per_s"]
        results["bearer_overhead_pct"] = round(
            100 * (1 - results["manifest_get_bearer_per_s"] / off_rate), 1
        )
        for client in (plain, basic, bearer):
            await client.aclose()
        await store.close()
    finally:
        await meta.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database", default=None, help="metadata URL (default: temp SQLite)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="per-principal rate limit to enable (adds a bucket write)",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.seconds, args.database, args.rate)), indent=2))
