"""The stress test's clients: pushes, re-tags, deletes, mounts and slow uploads over /v2/.

Each client is an asyncio task with its own httpx client and its own tags
(``c<id>-<n>``), so the ledger of what must still be there needs no locks
and no guessing: a tag a client pushed and did not delete must pull at the
end. Every request goes to a randomly chosen server process, so a chunked
upload's PATCH and PUT often land on different replicas.

What may legitimately fail, and is retried: an upload whose storage commit
deduplicated onto bytes GC deleted (BLOB_UPLOAD_INVALID, ADR-0007), a mount
from a repository whose link GC removed (202: the bytes are sent instead),
and a manifest whose blobs were uploaded longer ago than the grace window
(MANIFEST_BLOB_UNKNOWN). The last is a protocol violation when the push took
less than the grace window, and is recorded as a failure.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from oci.digest import Digest
from tests.http._oci import Blob, descriptor, image

__all__ = ["Ledger", "Stress", "pull_completely"]

REPOS = ("stress/alpha", "stress/beta", "stress/gamma")
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"
# How much sooner than the grace window a MANIFEST_BLOB_UNKNOWN counts as
# GC's fault: process start-up of the clock readings, not load.
_MARGIN = 0.25


@dataclass
class Ledger:
    """What the clients expect to find at the end, and what went wrong."""

    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    referrers: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # subject -> refs
    held: set[tuple[str, str]] = field(default_factory=set)  # (repo, digest)
    failures: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


class _Retry(Exception):
    """The push must start over (its blobs or children went, legitimately)."""


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}"


@dataclass
class Stress:
    servers: list[str]
    ledger: Ledger
    grace: float
    pool: list[Blob]  # layers the clients share

    def _base(self, rng: random.Random) -> str:
        return rng.choice(self.servers)

    def _fail(self, what: str, response: httpx.Response) -> None:
        self.ledger.failures.append(f"{what}: {response.status_code} {response.text[:300]}")

    async def client(self, cid: int, until: float) -> None:
        rng = random.Random(cid * 7919 + secrets.randbits(16))
        state = _ClientState(cid)
        operations = [
            (self._push, 40),
            (self._push_index, 6),
            (self._push_referrer, 6),
            (self._retag, 14),
            (self._delete_tag, 14),
            (self._delete_manifest, 6),
            (self._abandon, 6),
            (self._mount, 8),
        ]
        functions, weights = zip(*operations, strict=True)
        async with httpx.AsyncClient(timeout=120) as http:
            while time.monotonic() < until:
                operation = rng.choices(functions, weights)[0]
                try:
                    await operation(http, rng, state)
                except httpx.HTTPError as exc:
                    self.ledger.failures.append(f"client {cid}: {type(exc).__name__}: {exc}")
                self.ledger.counts[operation.__name__.lstrip("_")] += 1

    # -- building blocks -------------------------------------------------------------

    async def _upload(
        self, http: httpx.AsyncClient, rng: random.Random, repo: str, blob: Blob
    ) -> bool:
        """Upload ``blob``, monolithic or in two chunks with a pause; False if refused."""
        digest = str(blob.digest)
        for _ in range(3):
            if rng.random() < 0.3 and blob.size >= 2:
                started = await http.post(f"{self._base(rng)}/v2/{repo}/blobs/uploads/")
                if started.status_code != 202:
                    self._fail("start upload", started)
                    return False
                path = urlsplit(started.headers["Location"]).path
                half = blob.size // 2
                patched = await http.patch(
                    f"{self._base(rng)}{path}",
                    content=blob.data[:half],
                    headers={
                        "Content-Range": f"0-{half - 1}",
                        "Content-Type": "application/octet-stream",
                    },
                )
                if patched.status_code != 202:
                    self._fail("patch upload", patched)
                    return False
                await anyio.sleep(rng.uniform(0, 0.4))
                response = await http.put(
                    f"{self._base(rng)}{urlsplit(patched.headers['Location']).path}",
                    params={"digest": digest},
                    content=blob.data[half:],
                )
            else:
                response = await http.post(
                    f"{self._base(rng)}/v2/{repo}/blobs/uploads/",
                    params={"digest": digest},
                    content=blob.data,
                )
            if response.status_code == 201:
                return True
            if _code(response) == "BLOB_UPLOAD_INVALID":
                self.ledger.counts["upload refused: bytes collected meanwhile"] += 1
                continue
            self._fail(f"upload {digest} to {repo}", response)
            return False
        return False

    async def _put_manifest(
        self,
        http: httpx.AsyncClient,
        rng: random.Random,
        repo: str,
        reference: str | None,
        document: dict[str, Any],
        since: float,
    ) -> str | None:
        """PUT and return the digest; _Retry when its content went because the push was slow."""
        body = json.dumps(document, separators=(",", ":")).encode()
        digest = str(Digest.compute(body))
        response = await http.put(
            f"{self._base(rng)}/v2/{repo}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": document["mediaType"]},
        )
        took = time.monotonic() - since
        if response.status_code == 201:
            return digest
        if _code(response) == "MANIFEST_BLOB_UNKNOWN":
            if took < self.grace - _MARGIN:
                self._fail(f"push to {repo} lost content after only {took:.2f}s", response)
                return None
            self.ledger.counts["manifest refused: push slower than the grace window"] += 1
            raise _Retry
        self._fail(f"put manifest {repo}:{reference}", response)
        return None

    async def _image(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState, repo: str,
        tag: str | None, extra: dict[str, Any] | None = None,
    ) -> str | None:  # fmt: skip
        for _ in range(3):
            since = time.monotonic()
            config = Blob(json.dumps({"client": state.cid, "nonce": secrets.token_hex(8)}).encode())
            layers = rng.sample(self.pool, rng.randint(1, 3))
            if rng.random() < 0.5:
                layers.append(Blob(secrets.token_bytes(rng.randint(64, 4096))))
            if not all([await self._upload(http, rng, repo, b) for b in (config, *layers)]):
                continue
            state.blobs.setdefault(repo, []).extend(layers)
            await anyio.sleep(rng.uniform(0, 0.6))  # blobs before their manifest, with a pause
            document = image(config, layers)
            document.update(extra or {})
            try:
                return await self._put_manifest(http, rng, repo, tag, document, since)
            except _Retry:
                continue
        return None

    # -- operations --------------------------------------------------------------------

    async def _push(self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState) -> None:
        repo, tag = rng.choice(REPOS), state.new_tag()
        digest = await self._image(http, rng, state, repo, tag)
        if digest is not None:
            self.ledger.tags[(repo, tag)] = digest
            state.tags.append((repo, tag))

    async def _push_index(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        repo, tag = rng.choice(REPOS), state.new_tag()
        since = time.monotonic()
        children = []
        for _ in range(2):
            child = await self._image(http, rng, state, repo, None)
            if child is None:
                return
            children.append(child)
        entries = []
        for digest in children:
            got = await http.get(
                f"{self._base(rng)}/v2/{repo}/manifests/{digest}", headers={"Accept": ACCEPT}
            )
            if got.status_code != 200:
                if time.monotonic() - since < self.grace - _MARGIN:
                    self._fail(f"child {digest} went after {time.monotonic() - since:.2f}s", got)
                else:  # untagged for longer than retention's grace: its to take
                    self.ledger.counts["index refused: push slower than the grace window"] += 1
                return
            entries.append(descriptor(MANIFEST, Digest.parse(digest), len(got.content)))
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        }
        try:
            pushed = await self._put_manifest(http, rng, repo, tag, document, since)
        except _Retry:
            return
        if pushed is not None:
            self.ledger.tags[(repo, tag)] = pushed
            state.tags.append((repo, tag))

    async def _push_referrer(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        if not state.tags:
            return
        repo, tag = rng.choice(state.tags)
        subject = self.ledger.tags[(repo, tag)]
        got = await http.get(
            f"{self._base(rng)}/v2/{repo}/manifests/{subject}", headers={"Accept": ACCEPT}
        )
        if got.status_code != 200:
            self._fail(f"subject {repo}:{tag} unreadable", got)
            return
        extra = {
            "artifactType": SIGNATURE,
            "subject": descriptor(
                got.headers["Content-Type"], Digest.parse(subject), len(got.content)
            ),
        }
        digest = await self._image(http, rng, state, repo, None, extra)
        if digest is not None:
            self.ledger.referrers.setdefault((repo, subject), set()).add(digest)

    async def _retag(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        if not state.tags:
            return
        repo, tag = rng.choice(state.tags)
        got = await http.get(
            f"{self._base(rng)}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}
        )
        if got.status_code != 200:
            self._fail(f"tag {repo}:{tag} vanished", got)
            return
        new = state.new_tag()
        response = await http.put(
            f"{self._base(rng)}/v2/{repo}/manifests/{new}",
            content=got.content,
            headers={"Content-Type": got.headers["Content-Type"]},
        )
        if response.status_code != 201:
            self._fail(f"re-tag {repo}:{tag} as {new}", response)
            return
        self.ledger.tags[(repo, new)] = self.ledger.tags[(repo, tag)]
        state.tags.append((repo, new))

    async def _delete_tag(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        if not state.tags:
            return
        repo, tag = state.tags.pop(rng.randrange(len(state.tags)))
        response = await http.delete(f"{self._base(rng)}/v2/{repo}/manifests/{tag}")
        if response.status_code == 202:
            del self.ledger.tags[(repo, tag)]
        else:
            state.tags.append((repo, tag))
            self._fail(f"delete tag {repo}:{tag}", response)

    async def _delete_manifest(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        if not state.tags:
            return
        repo, tag = rng.choice(state.tags)
        digest = self.ledger.tags[(repo, tag)]
        response = await http.delete(f"{self._base(rng)}/v2/{repo}/manifests/{digest}")
        if response.status_code == 403:  # held: stays, tags and all
            self.ledger.counts["delete refused: held"] += 1
            return
        if response.status_code != 202:
            self._fail(f"delete {repo}@{digest}", response)
            return
        for key in [k for k, v in self.ledger.tags.items() if k[0] == repo and v == digest]:
            del self.ledger.tags[key]
            if key in state.tags:
                state.tags.remove(key)
        self.ledger.referrers.pop((repo, digest), None)  # they follow their subject

    async def _abandon(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        """Upload a blob no manifest will ever name: garbage once its grace is over."""
        await self._upload(
            http, rng, rng.choice(REPOS), Blob(secrets.token_bytes(rng.randint(16, 2048)))
        )

    async def _mount(
        self, http: httpx.AsyncClient, rng: random.Random, state: _ClientState
    ) -> None:
        sources = [(repo, blob) for repo, blobs in state.blobs.items() for blob in blobs[-20:]]
        if not sources:
            return
        source, blob = rng.choice(sources)
        target, tag = rng.choice([r for r in REPOS if r != source]), state.new_tag()
        since = time.monotonic()
        response = await http.post(
            f"{self._base(rng)}/v2/{target}/blobs/uploads/",
            params={"mount": str(blob.digest), "from": source},
        )
        if response.status_code == 202:  # not mounted (its link went): send the bytes
            self.ledger.counts["mount fell back to an upload"] += 1
            response = await http.put(
                f"{self._base(rng)}{urlsplit(response.headers['Location']).path}",
                params={"digest": str(blob.digest)},
                content=blob.data,
            )
        if response.status_code != 201:
            if _code(response) != "BLOB_UPLOAD_INVALID":
                self._fail(f"mount {blob.digest} into {target}", response)
            return
        config = Blob(json.dumps({"mounted": secrets.token_hex(8)}).encode())
        if not await self._upload(http, rng, target, config):
            return
        try:
            digest = await self._put_manifest(http, rng, target, tag, image(config, [blob]), since)
        except _Retry:
            return
        if digest is not None:
            self.ledger.tags[(target, tag)] = digest
            state.tags.append((target, tag))
            state.blobs.setdefault(target, []).append(blob)


@dataclass
class _ClientState:
    cid: int
    tags: list[tuple[str, str]] = field(default_factory=list)
    blobs: dict[str, list[Blob]] = field(default_factory=dict)
    counter: int = 0

    def new_tag(self) -> str:
        self.counter += 1
        return f"c{self.cid}-{self.counter}"


async def pull_completely(
    http: httpx.AsyncClient, base: str, repo: str, reference: str
) -> list[str]:
    """Pull a manifest and everything it names, verifying every digest; the problems found."""
    problems: list[str] = []
    got = await http.get(f"{base}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    if got.status_code != 200:
        return [f"{repo}:{reference}: manifest {got.status_code}"]
    digest = got.headers["Docker-Content-Digest"]
    if str(Digest.compute(got.content)) != digest or (":" in reference and reference != digest):
        problems.append(f"{repo}:{reference}: manifest digest mismatch")
    document = got.json()
    for child in document.get("manifests", []):
        problems += await pull_completely(http, base, repo, child["digest"])
    for desc in [document.get("config"), *document.get("layers", [])]:
        if desc is None:
            continue
        blob = await http.get(f"{base}/v2/{repo}/blobs/{desc['digest']}")
        if blob.status_code != 200:
            problems.append(f"{repo}@{digest}: blob {desc['digest']} {blob.status_code}")
        elif str(Digest.compute(blob.content)) != desc["digest"]:
            problems.append(f"{repo}@{digest}: blob {desc['digest']} corrupt")
    return problems
