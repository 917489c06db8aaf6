"""Native artifacts as operations over the OCI services: publish, read, list, delete.

Theory of operation. A native artifact is nothing but an OCI image manifest
(docs/native-manifest.md, "The OCI mapping"): publishing one commits the
canonical CBOR as the config blob through the same upload path as /v2/ and
puts the manifest from ``to_oci_manifest`` through the same manifest service,
tagged with the version. Reading goes the other way through
``from_oci_manifest``, so an artifact pushed by oras reads as a synthesised
view. Everything a client could get wrong is checked before the first byte is
stored, so a rejected publish leaves nothing behind.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from oci import native
from oci.digest import Digest
from oci.errors import (
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    Unsupported,
)
from oci.manifest import Descriptor, Manifest, parse_manifest
from oci.mediatype import OCI_MANIFEST, base_type
from oci.native import NativeFile, NativeManifest, NativeManifestInvalid
from oci.reference import validate_tag
from registry.meta import queries
from registry.meta.records import BlobRecord, ManifestRecord
from registry.native.uploads import push_blob
from registry.service import manifests
from registry.service.registry import Registry

__all__ = [
    "Artifact",
    "decode_body",
    "delete_artifact",
    "get_artifact",
    "history",
    "list_artifacts",
    "publish",
    "find_file",
]


@dataclass(frozen=True, slots=True)
class Artifact:
    """A version as the native API shows it: the native view and the OCI manifest it came from."""

    manifest: NativeManifest
    digest: Digest  # the OCI manifest's digest: what /v2/ and oras name it by
    created_at: dt.datetime


def decode_body(body: bytes, content_type: str | None) -> NativeManifest:
    """CBOR is decoded strictly (its bytes are the identity); JSON is a representation."""
    kind = base_type(content_type) or native.NATIVE_MANIFEST_CBOR
    if kind == native.NATIVE_MANIFEST_CBOR:
        return native.decode_cbor(body)
    if kind in (native.NATIVE_MANIFEST_JSON, "application/json"):
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestInvalid(
                f"native manifest is not valid JSON: {exc}", detail={"reason": str(exc)}
            ) from None
        return native.from_json(document)
    raise Unsupported(
        f"content type {kind!r} is not a native manifest; send "
        f"{native.NATIVE_MANIFEST_CBOR} or {native.NATIVE_MANIFEST_JSON}",
        detail={"content_type": kind},
    )


async def _linked(registry: Registry, name: str, digests: list[str]) -> dict[str, BlobRecord]:
    """The blobs among ``digests`` (sha256) that ``name`` links, read in a few batched queries.

    A thousand-file artifact costs a handful of queries on one connection,
    not a thousand round trips through the pool.
    """
    async with registry.meta.reading() as conn:
        return await queries.linked_blobs(conn, name, digests)


async def _check_files(registry: Registry, name: str, files: tuple[NativeFile, ...]) -> None:
    linked = await _linked(registry, name, sorted({str(f.sha256) for f in files}))
    for i, f in enumerate(files):
        blob = linked.get(str(f.sha256))
        if blob is None:
            raise ManifestBlobUnknown(
                f"files[{i}] {f.path!r}: blob {f.sha256} is not committed in repository {name}",
                detail={"path": f.path, "digest": str(f.sha256)},
            )
        if blob.size != f.size or (f.blake3 is not None and blob.blake3 != f.blake3):
            raise NativeManifestInvalid(
                f"files[{i}]",
                f"does not describe the stored blob ({blob.sha256}, {blob.blake3}, "
                f"{blob.size} bytes)",
                f.path,
            )


async def publish(
    registry: Registry,
    name: str,
    version: str,
    m: NativeManifest,
    *,
    actor: str,
    override: str | None = None,
) -> Artifact:
    """Store ``m`` as ``name:version``; the same manifest always yields the same digests.

    An immutable version moves only with ``override``, an admin's reason.
    """
    if (m.name, m.version) != (name, version):
        raise NativeManifestInvalid(
            "name", f"and version must be the URL's {name}:{version}", f"{m.name}:{m.version}"
        )
    if m.synthesised:
        raise NativeManifestInvalid("synth", "is true: a synthesised view cannot be published")
    await _check_files(registry, name, m.files)
    body = native.encode_cbor(m)
    config = Digest.compute(body)

    async def one_chunk() -> AsyncIterator[bytes]:
        yield body

    # The CBOR is a few KiB at most (the request was capped); committing it
    # through the upload path records it like any pushed blob.
    await push_blob(registry, name, config, None, one_chunk(), str(len(body)), actor=actor)
    oci_body = native.to_oci_manifest(m, config, len(body))
    stored = await manifests.put_manifest(
        registry, name, version, oci_body, OCI_MANIFEST, [], actor=actor, override=override
    )
    record = await manifests.get_manifest(registry, name, str(stored.digest))
    return Artifact(m, stored.digest, record.created_at)


async def _view(
    registry: Registry, record: ManifestRecord, version: str, with_blake3: bool
) -> NativeManifest:
    parsed: Manifest = parse_manifest(record.body, record.media_type)
    blake3: dict[Digest, Digest] = {}
    # A native artifact carries its blake3 digests; only a synthesised view
    # needs them looked up, one query per layer, so callers that serve one
    # file skip the lookups.
    embedded = native.ANNOTATION_MANIFEST in parsed.annotations
    for layer in [] if embedded or not with_blake3 else parsed.layers:
        if layer.digest.algorithm == "sha256":
            blob = await registry.meta.get_blob(record.repository, layer.digest)
            if blob is not None:
                blake3[layer.digest] = blob.blake3
    return native.from_oci_manifest(parsed, record.repository, version, blake3.get)


async def get_artifact(
    registry: Registry, name: str, version: str, *, with_blake3: bool = True
) -> Artifact:
    record = await manifests.get_manifest(registry, name, validate_tag(version))
    view = await _view(registry, record, version, with_blake3)
    return Artifact(view, record.digest, record.created_at)


async def list_artifacts(
    registry: Registry, name: str, n: int, last: str | None, labels: Mapping[str, str]
) -> tuple[list[Artifact], bool]:
    """Versions after ``last`` whose labels include ``labels``; and whether more follow.

    Versions that are not artifacts at all (an image index, a manifest whose
    titles are not valid paths) are skipped rather than failing the listing.
    """
    if not await registry.meta.repository_exists(name):
        raise NameUnknown(f"repository {name} is not known", detail={"name": name})
    found: list[Artifact] = []
    cursor = last
    while len(found) <= n:
        tags = await registry.meta.list_tags(name, 100, cursor)
        if not tags:
            break
        for tag in tags:
            try:
                artifact = await get_artifact(registry, name, tag)
            except (ManifestInvalid, ManifestUnknown):
                continue
            if all(artifact.manifest.labels.get(k) == v for k, v in labels.items()):
                found.append(artifact)
                if len(found) > n:
                    break
        cursor = tags[-1]
    return found[:n], len(found) > n


async def delete_artifact(
    registry: Registry, name: str, version: str, *, actor: str, override: str | None = None
) -> None:
    """Untag the version; its blobs stay until garbage collection, its history stays in the log.

    An immutable version goes only with ``override``, an admin's reason.
    """
    await get_artifact(registry, name, version)  # 404 for what is not there
    await manifests.delete_manifest(registry, name, version, actor=actor, override=override)


class _FileTables:
    """Recently served artifacts' title -> layer tables, by (repository, manifest digest).

    A manifest never changes under its digest, so a table stays right for as
    long as it is kept; each process keeps its own few (nothing to share).
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._tables: collections.OrderedDict[tuple[str, str], dict[str, Descriptor]] = (
            collections.OrderedDict()
        )

    def get(self, key: tuple[str, str]) -> dict[str, Descriptor] | None:
        table = self._tables.get(key)
        if table is not None:
            self._tables.move_to_end(key)
        return table

    def put(self, key: tuple[str, str], table: dict[str, Descriptor]) -> None:
        self._tables[key] = table
        while len(self._tables) > self._size:
            self._tables.popitem(last=False)


_file_tables = _FileTables()


async def _tagged(registry: Registry, name: str, tag: str) -> str | None:
    async with registry.meta.reading() as conn:
        return await queries.tag_digest(conn, name, tag)


async def find_file(registry: Registry, name: str, version: str, path: str) -> Descriptor:
    """The layer that holds ``path``, found by its title without building the native view.

    Serving one file of a thousand must not decode and validate all thousand,
    nor read the manifest each time: the version is resolved to its digest
    (one small query) and the digest's title table is parsed once and kept
    (``_FileTables``). The layers of a native artifact were checked against
    its manifest when it was published, and the title is what both views
    name a file by.
    """
    digest = await _tagged(registry, name, validate_tag(version))
    table = None if digest is None else _file_tables.get((name, digest))
    if table is None:
        # Unknown names and versions get their errors from the manifest service.
        record = await manifests.get_manifest(registry, name, digest or version)
        parsed = parse_manifest(record.body, record.media_type)
        table = {}
        for layer in parsed.layers:
            table.setdefault(layer.annotations.get(native.ANNOTATION_TITLE, ""), layer)
        table.pop("", None)
        _file_tables.put((name, str(record.digest)), table)
    found = table.get(path)
    if found is None:
        raise ManifestUnknown(
            f"artifact {name}:{version} has no file {path!r}", detail={"path": path}
        )
    return found


async def history(
    registry: Registry, name: str, at: dt.datetime, version: str | None
) -> dict[str, Digest]:
    """version -> manifest digest as it stood at ``at``, for every version ever tagged."""
    if version is not None:
        tags = {validate_tag(version)}
    else:
        tags = set()
        after = 0
        while True:
            page = await registry.meta.events(after, 500, name, ["manifest.put"])
            if not page:
                break
            for record in page:
                tags.update(getattr(record.event, "tags", ()))
            after = page[-1].seq
    out: dict[str, Digest] = {}
    for tag in sorted(tags):
        digest = await registry.meta.tag_at(name, tag, at)
        if digest is not None:
            out[tag] = digest
    return out
