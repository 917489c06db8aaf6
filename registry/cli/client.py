"""A client of the native API: push a directory as an artifact, pull one back.

Theory of operation. ``push`` hashes every file (sha256 and blake3 in one
read), then uploads the files in parallel, each by one of three routes:

1. a file up to ``SMALL`` bytes is sent at once in one request naming both
   digests (``POST …/uploads?sha256=…&blake3=…``): the server stores it, or
   answers 200 without storing it when the repository holds it already, so
   a small file costs one round trip whether or not it is new;
2. a larger file the repository already holds (``HEAD /v2/<name>/blobs/<sha256>``)
   is not sent, which is what makes a re-run after an interruption cheap;
   up to ``CHUNK`` bytes it goes in one request as in 1;
3. a session for this blob survives from an interrupted run (its id is kept in
   a small state file under the cache directory): its status says how many
   bytes the server holds, and the upload continues from there;
4. otherwise a new session, sent in chunks with ``Content-Range``.

Each session is committed under both digests. Then the native manifest is
built and PUT as canonical CBOR. ``pull`` streams each file to a temporary
name beside its target, checks both digests, and renames it into place; a
path is re-checked here (the server checks it too) so a hostile server can
never make a pull write outside the target directory.

Memory stays bounded: files are read and written in ``CHUNK``-sized pieces.
The connection pool keeps one connection alive per worker, so parallel
requests never wait for a connection or pay a new handshake. Credentials
and the token flow are ``registry.cli.client_auth``'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import mimetypes
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import httpx

from oci import native
from oci.digest import Digest
from oci.errors import RegistryError
from oci.native import ExternalLink, NativeFile, NativeManifest, Retention
from registry.auth.scope import classify, scope_for
from registry.cli.client_auth import AuthError, ClientError, Credentials, RegistryAuth

__all__ = [
    "CHUNK",
    "SMALL",
    "AuthError",
    "ClientError",
    "NativeClient",
    "Progress",
    "default_state_dir",
    "open_http",
    "raise_for",
    "scan",
]

CHUNK = 8 * 1024 * 1024
# Up to this size a file is sent without asking whether the server has it:
# the question would cost as much as the answer.
SMALL = 256 * 1024
Progress = Callable[[str, int], None]  # (path, bytes just done)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "artifact-store" / "uploads"


def _hash_file(path: Path) -> tuple[Digest, Digest, int]:
    sha, b3, size = hashlib.sha256(), blake3.blake3(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            b3.update(chunk)
            size += len(chunk)
    return Digest("sha256", sha.hexdigest()), Digest("blake3", b3.hexdigest()), size


def scan(root: Path, workers: int = 4) -> list[tuple[Path, NativeFile]]:
    """Every regular file under ``root`` with both digests; symlinks are refused, not followed."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                raise ClientError(f"{path}: only regular files can be pushed")
            found.append(path)

    def entry(path: Path) -> tuple[Path, NativeFile]:
        sha, b3, size = _hash_file(path)
        rel = path.relative_to(root).as_posix()
        media_type = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        return path, NativeFile(rel, size, media_type, sha, b3)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(entry, found))


_SIGN_IN = (
    "give --username and --password (or ARTIFACT_STORE_USERNAME and "
    "ARTIFACT_STORE_PASSWORD, or an API token in ARTIFACT_STORE_TOKEN), "
    "or run `artifact-store login SERVER`"
)


def raise_for(response: httpx.Response, what: str) -> None:
    """ClientError naming ``what`` and the server's reason, unless the response succeeded."""
    if response.is_success:
        return
    response.read()  # a streamed response's error body
    try:
        error = response.json()["errors"][0]
        reason = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, IndexError, TypeError):
        reason = response.text[:200] or response.reason_phrase
    if response.status_code == 401:
        # Credentials the server refuses end in the token flow (AuthError there);
        # a 401 that gets here means none were given, or none it accepts here.
        raise AuthError(f"{what}: authentication required ({reason}); {_SIGN_IN}")
    raise ClientError(f"{what}: HTTP {response.status_code} {reason}")


def open_http(
    server: str,
    credentials: Credentials | None = None,
    *,
    connections: int = 4,
    timeout: float = 300.0,
    pushing: Callable[[str], bool] = lambda name: False,
) -> httpx.Client:
    """An HTTP client on ``server`` that signs in as the server asks (``RegistryAuth``).

    ``pushing(name)`` says whether the caller is about to push to ``name``:
    then a token is asked for pull and push at once, not one after the other.
    """

    def scope_of(request: httpx.Request) -> str | None:
        try:
            target = classify(request.method, request.url.path, b"", request.url.params)
        except RegistryError:  # a name the server would refuse: let the challenge decide
            return None
        if target.repository is not None and pushing(target.repository):
            return f"repository:{target.repository}:pull,push"
        return scope_for(target) if target.repository is not None else None

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(
        base_url=server.rstrip("/"),
        timeout=timeout,
        limits=limits,
        auth=RegistryAuth(credentials, scope_of=scope_of),
    )


@dataclass
class NativeClient:
    server: str
    state_dir: Path | None = None
    workers: int = 8
    timeout: float = 300.0
    credentials: Credentials | None = None

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")
        self._pushing: set[str] = set()
        self._http = open_http(
            self.server,
            self.credentials,
            connections=self.workers + 1,
            timeout=self.timeout,
            pushing=self._pushing.__contains__,
        )

    @property
    def http(self) -> httpx.Client:
        """The signed-in HTTP client, for requests this class has no method for."""
        return self._http

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NativeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- uploads ---------------------------------------------------------------

    def _state_file(self, name: str, sha256: Digest) -> Path | None:
        if self.state_dir is None:
            return None
        key = hashlib.sha256(f"{self.server}\n{name}\n{sha256}".encode()).hexdigest()
        return self.state_dir / f"{key}.json"

    def has_blob(self, name: str, digest: Digest) -> bool:
        return self._http.head(f"/v2/{name}/blobs/{digest}").status_code == 200

    def _resume(self, name: str, state: Path | None) -> tuple[str, int] | None:
        if state is None or not state.exists():
            return None
        try:
            location = json.loads(state.read_text())["location"]
        except (ValueError, KeyError, OSError):
            return None
        response = self._http.get(location)
        if response.status_code != 200:
            return None  # expired or finished elsewhere: start afresh
        return location, int(response.json()["offset"])

    def upload_file(self, name: str, path: Path, f: NativeFile, progress: Progress) -> str:
        """Make ``f`` a committed blob of ``name``; returns how: skipped, resumed or uploaded."""
        if f.size > SMALL and self.has_blob(name, f.sha256):
            progress(f.path, f.size)
            return "skipped"
        params = {"sha256": str(f.sha256)}
        if f.blake3 is not None:
            params["blake3"] = str(f.blake3)
        if f.size <= CHUNK:
            # One request that stores and commits the blob (200: it was there already).
            with path.open("rb") as fh:
                data = fh.read()
            r = self._http.post(f"/api/v1/artifacts/{name}/uploads", params=params, content=data)
            raise_for(r, f"upload {f.path}")
            progress(f.path, f.size)
            return "skipped" if r.status_code == 200 else "uploaded"
        state = self._state_file(name, f.sha256)
        resumed = self._resume(name, state)
        if resumed is None:
            opened = self._http.post(f"/api/v1/artifacts/{name}/uploads")
            raise_for(opened, f"open upload for {f.path}")
            location, offset, how = opened.headers["location"], 0, "uploaded"
            if state is not None:
                state.parent.mkdir(parents=True, exist_ok=True)
                state.write_text(json.dumps({"location": location}))
        else:
            (location, offset), how = resumed, "resumed"
        progress(f.path, offset)
        with path.open("rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(CHUNK):
                end = offset + len(chunk) - 1
                r = self._http.patch(
                    location, content=chunk, headers={"Content-Range": f"{offset}-{end}"}
                )
                raise_for(r, f"upload {f.path} at {offset}")
                offset += len(chunk)
                progress(f.path, len(chunk))
        raise_for(self._http.put(location, params=params), f"commit {f.path}")
        if state is not None:
            state.unlink(missing_ok=True)
        return how

    # -- artifacts -------------------------------------------------------------

    def push(
        self,
        root: Path,
        name: str,
        version: str,
        *,
        labels: Mapping[str, str] | None = None,
        links: Sequence[ExternalLink] = (),
        retention: Retention | None = None,
        producer: str | None = None,
        run: str | None = None,
        created: dt.datetime | None = None,
        progress: Progress | None = None,
        on_scanned: Callable[[list[NativeFile]], None] | None = None,
    ) -> tuple[str, dict[str, int]]:
        """Upload ``root`` and publish it; returns the manifest digest and how files went."""
        entries = scan(root, self.workers)
        files = [f for _, f in entries]
        manifest = NativeManifest(
            name,
            version,
            tuple(files),
            created or dt.datetime.now(dt.UTC),
            producer=producer,
            run=run,
            labels=dict(labels or {}),
            links=tuple(links),
            retention=retention,
        )
        if on_scanned is not None:
            on_scanned(files)
        report = progress or (lambda path, n: None)
        counts = {"skipped": 0, "resumed": 0, "uploaded": 0}
        self._pushing.add(name)
        # Largest first: a big file started last would leave the other workers idle.
        ordered = sorted(entries, key=lambda entry: -entry[1].size)
        with ThreadPoolExecutor(self.workers) as pool:
            jobs = [pool.submit(self.upload_file, name, p, f, report) for p, f in ordered]
            for job in jobs:
                counts[job.result()] += 1
        response = self._http.put(
            f"/api/v1/artifacts/{name}/versions/{version}",
            content=native.encode_cbor(manifest),
            headers={"Content-Type": native.NATIVE_MANIFEST_CBOR},
        )
        raise_for(response, f"publish {name}:{version}")
        return str(response.json()["digest"]), counts

    def show(self, name: str, version: str) -> dict[str, Any]:
        response = self._http.get(f"/api/v1/artifacts/{name}/versions/{version}")
        raise_for(response, f"show {name}:{version}")
        document: dict[str, Any] = response.json()
        return document

    def versions(
        self, name: str, labels: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [("n", "100")]
        params += [("label", f"{k}={v}") for k, v in (labels or {}).items()]
        url: str | None = f"/api/v1/artifacts/{name}/versions"
        while url is not None:
            response = self._http.get(url, params=params if "?" not in url else None)
            raise_for(response, f"list {name}")
            yield from response.json()["versions"]
            link = response.headers.get("link")
            url = link.split(">")[0].lstrip("<") if link else None

    def pull(
        self,
        name: str,
        version: str,
        target: Path,
        progress: Progress | None = None,
        on_manifest: Callable[[NativeManifest], None] | None = None,
    ) -> NativeManifest:
        """Restore every file under ``target``, byte-identical and verified by both digests."""
        manifest = native.from_json(self.show(name, version)["manifest"])
        if on_manifest is not None:
            on_manifest(manifest)
        report = progress or (lambda path, n: None)
        root = target.resolve()
        root.mkdir(parents=True, exist_ok=True)

        def fetch(f: NativeFile) -> None:
            native.check_path(f.path)
            dest = (root / f.path).resolve()
            if root not in dest.parents:
                raise ClientError(f"{f.path!r} would be written outside {root}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            sha, b3 = hashlib.sha256(), blake3.blake3()
            url = f"/api/v1/artifacts/{name}/versions/{version}/files/{f.path}"
            with self._http.stream("GET", url) as response, part.open("wb") as out:
                raise_for(response, f"download {f.path}")
                for chunk in response.iter_bytes(CHUNK):
                    sha.update(chunk)
                    b3.update(chunk)
                    out.write(chunk)
                    report(f.path, len(chunk))
            got = (Digest("sha256", sha.hexdigest()), Digest("blake3", b3.hexdigest()))
            if got[0] != f.sha256 or (f.blake3 is not None and got[1] != f.blake3):
                with contextlib.suppress(OSError):
                    part.unlink()
                raise ClientError(f"{f.path}: content does not match its digests")
            part.replace(dest)

        with ThreadPoolExecutor(self.workers) as pool:
            for job in [pool.submit(fetch, f) for f in manifest.files]:
                job.result()
        return manifest
