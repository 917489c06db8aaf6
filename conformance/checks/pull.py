"""Pull: the category every registry MUST support.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pull
Each check pushes its own image first (so a pull-only registry skips them),
then reads it back and compares bytes, digests and headers.
"""

from __future__ import annotations

import httpx

from conformance.checks._registry import check
from conformance.content import OCI_INDEX, OCI_MANIFEST, Manifest, digest_of, oci_manifest
from conformance.context import Context
from conformance.result import CheckFailed

ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def verify_manifest_response(response: httpx.Response, manifest: Manifest, *, head: bool) -> None:
    """The headers and body a manifest GET or HEAD must carry."""
    Context.expect(response, 200)
    digest = response.headers.get("Docker-Content-Digest")
    # SHOULD be present; when present it MUST match the content (#pulling-manifests).
    if digest is not None and digest != manifest.digest:
        raise CheckFailed(f"Docker-Content-Digest {digest} != {manifest.digest}")
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type != manifest.media_type:
        raise CheckFailed(f"Content-Type {media_type!r}; pushed as {manifest.media_type!r}")
    length = response.headers.get("Content-Length")
    if length is not None and int(length) != len(manifest.body):
        raise CheckFailed(f"Content-Length {length}; manifest is {len(manifest.body)} bytes")
    if head:
        if response.content:
            raise CheckFailed("HEAD response carried a body")
    elif response.content != manifest.body:
        raise CheckFailed("manifest bytes differ from the bytes pushed")


@check("pull", "#determining-support")
async def base_endpoint(t: Context) -> None:
    """GET /v2/ answers 200: the registry implements the spec."""
    t.expect(await t.request("GET", "/v2/"), 200)


async def _pushed(t: Context, label: str) -> tuple[str, Manifest]:
    repo = t.repo(label)
    manifest = oci_manifest(layers=2)
    await t.push_manifest(repo, manifest, "latest")
    return repo, manifest


@check("pull", "#pulling-manifests")
async def manifest_get_by_tag(t: Context) -> None:
    """GET a manifest by tag: 200, exact bytes, Content-Type, Docker-Content-Digest."""
    repo, manifest = await _pushed(t, "pull-tag")
    response = await t.request("GET", f"/v2/{repo}/manifests/latest", headers={"Accept": ACCEPT})
    verify_manifest_response(response, manifest, head=False)


@check("pull", "#pulling-manifests")
async def manifest_get_by_digest(t: Context) -> None:
    """GET a manifest by digest: 200, exact bytes, matching headers."""
    repo, manifest = await _pushed(t, "pull-digest")
    url = f"/v2/{repo}/manifests/{manifest.digest}"
    response = await t.request("GET", url, headers={"Accept": ACCEPT})
    verify_manifest_response(response, manifest, head=False)


@check("pull", "#checking-if-content-exists-in-the-registry")
async def manifest_head_by_tag(t: Context) -> None:
    """HEAD a manifest by tag: 200, no body, Content-Length and digest headers."""
    repo, manifest = await _pushed(t, "head-tag")
    response = await t.request("HEAD", f"/v2/{repo}/manifests/latest", headers={"Accept": ACCEPT})
    verify_manifest_response(response, manifest, head=True)


@check("pull", "#checking-if-content-exists-in-the-registry")
async def manifest_head_by_digest(t: Context) -> None:
    """HEAD a manifest by digest: 200, no body, matching headers."""
    repo, manifest = await _pushed(t, "head-digest")
    url = f"/v2/{repo}/manifests/{manifest.digest}"
    response = await t.request("HEAD", url, headers={"Accept": ACCEPT})
    verify_manifest_response(response, manifest, head=True)


@check("pull", "#pulling-blobs")
async def blob_get(t: Context) -> None:
    """GET a blob: 200, the exact bytes, Docker-Content-Digest matching the body."""
    repo, manifest = await _pushed(t, "blob-get")
    for blob in manifest.blobs:
        response = await t.get_following(f"/v2/{repo}/blobs/{blob.digest}")
        t.expect(response, 200)
        if response.content != blob.data:
            raise CheckFailed(f"blob {blob.digest}: bytes differ from the bytes pushed")
        digest = response.headers.get("Docker-Content-Digest")
        if digest is not None and digest != digest_of(response.content, digest.split(":")[0]):
            raise CheckFailed(f"Docker-Content-Digest {digest} does not match the body")


@check("pull", "#checking-if-content-exists-in-the-registry")
async def blob_head(t: Context) -> None:
    """HEAD a blob: 200, no body, Content-Length equal to the blob's size."""
    repo, manifest = await _pushed(t, "blob-head")
    blob = manifest.blobs[1]
    response = t.expect(await t.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}"), 200)
    length = t.header(response, "Content-Length")
    if int(length) != len(blob.data):
        raise CheckFailed(f"Content-Length {length}; blob is {len(blob.data)} bytes")
    digest = response.headers.get("Docker-Content-Digest")
    if digest is not None and digest != blob.digest:
        raise CheckFailed(f"Docker-Content-Digest {digest} != {blob.digest}")


@check("pull", "#pulling-blobs")
async def blob_unknown(t: Context) -> None:
    """GET and HEAD of a blob the repository lacks: 404, BLOB_UNKNOWN."""
    repo, _ = await _pushed(t, "blob-unknown")
    missing = digest_of(repo.encode() + b"absent")
    t.expect(await t.request("HEAD", f"/v2/{repo}/blobs/{missing}"), 404)
    response = await t.request("GET", f"/v2/{repo}/blobs/{missing}")
    t.expect_error(response, [404], ["BLOB_UNKNOWN"])


@check("pull", "#pulling-manifests")
async def manifest_unknown(t: Context) -> None:
    """GET and HEAD of an unknown tag or digest: 404, MANIFEST_UNKNOWN."""
    repo, _ = await _pushed(t, "manifest-unknown")
    missing = digest_of(repo.encode() + b"absent")
    for reference in ("no-such-tag", missing):
        url = f"/v2/{repo}/manifests/{reference}"
        t.expect(await t.request("HEAD", url, headers={"Accept": ACCEPT}), 404)
        response = await t.request("GET", url, headers={"Accept": ACCEPT})
        t.expect_error(response, [404], ["MANIFEST_UNKNOWN"])


@check("pull", "#pulling-manifests")
async def manifest_reference_outside_the_tag_grammar(t: Context) -> None:
    """GET and HEAD of a reference that is neither a digest nor a valid tag: 404.

    Nothing can be stored under it, so it names no manifest; the spec lists
    only 404 as the failure of a manifest GET or HEAD (end-3).
    """
    repo, _ = await _pushed(t, "manifest-bad-tag")
    for reference in (".INVALID_MANIFEST_NAME", "-dash", "t" * 129):
        url = f"/v2/{repo}/manifests/{reference}"
        t.expect(await t.request("HEAD", url, headers={"Accept": ACCEPT}), 404)
        t.expect(await t.request("GET", url, headers={"Accept": ACCEPT}), 404)


@check("pull", "#pulling-manifests")
async def manifest_pull_of_unknown_repository(t: Context) -> None:
    """A pull from a repository that was never pushed: 404 (NAME_UNKNOWN or MANIFEST_UNKNOWN)."""
    repo = t.repo("never-pushed")
    response = await t.request("GET", f"/v2/{repo}/manifests/latest", headers={"Accept": ACCEPT})
    t.expect_error(response, [404], ["NAME_UNKNOWN", "MANIFEST_UNKNOWN"])
