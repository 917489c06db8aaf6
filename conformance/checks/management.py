"""Content management: deleting tags, manifests and blobs, and what is gone after.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#content-management
Deletion is optional ("Registries MAY implement deletion or they MAY disable
it"), so the refusals the spec names (405, and 400 for tags) count as not
supported; anything else that is not 202 fails.
"""

from __future__ import annotations

from conformance.checks._registry import check
from conformance.checks.pull import ACCEPT
from conformance.content import digest_of, oci_manifest, random_blob
from conformance.context import Context
from conformance.result import NotSupported


@check("management", "#deleting-tags")
async def delete_tag(t: Context) -> None:
    """DELETE /manifests/<tag>: 202; that tag is gone, the manifest and its other tags stay."""
    repo, manifest = t.repo("del-tag"), oci_manifest()
    await t.push_manifest(repo, manifest, "doomed")
    t.expect(await t.put_manifest(repo, manifest, "kept"), 201)
    response = await t.request("DELETE", f"/v2/{repo}/manifests/doomed")
    if response.status_code in (400, 405):
        raise NotSupported(f"tag deletion refused with {response.status_code}")
    t.expect(response, 202)
    gone = await t.request("GET", f"/v2/{repo}/manifests/doomed", headers={"Accept": ACCEPT})
    t.expect_error(gone, [404], ["MANIFEST_UNKNOWN"])
    for reference in ("kept", manifest.digest):
        url = f"/v2/{repo}/manifests/{reference}"
        t.expect(await t.request("HEAD", url, headers={"Accept": ACCEPT}), 200)


@check("management", "#deleting-manifests")
async def delete_manifest(t: Context) -> None:
    """DELETE /manifests/<digest>: 202; then 404 by digest and by the tag that named it."""
    repo, manifest = t.repo("del-manifest"), oci_manifest()
    await t.push_manifest(repo, manifest, "latest")
    response = await t.request("DELETE", f"/v2/{repo}/manifests/{manifest.digest}")
    if response.status_code == 405:
        raise NotSupported("manifest deletion refused with 405")
    t.expect(response, 202)
    for reference in (manifest.digest, "latest"):
        url = f"/v2/{repo}/manifests/{reference}"
        gone = await t.request("GET", url, headers={"Accept": ACCEPT})
        t.expect_error(gone, [404], ["MANIFEST_UNKNOWN"])


@check("management", "#deleting-manifests")
async def delete_manifest_unknown(t: Context) -> None:
    """DELETE of a manifest digest the repository never had: 404."""
    repo = t.repo("del-manifest-unknown")
    await t.push_manifest(repo, oci_manifest(), "latest")
    missing = digest_of(repo.encode())
    response = await t.request("DELETE", f"/v2/{repo}/manifests/{missing}")
    if response.status_code == 405:
        raise NotSupported("manifest deletion refused with 405")
    t.expect_error(response, [404], ["MANIFEST_UNKNOWN"])


@check("management", "#deleting-blobs")
async def delete_blob(t: Context) -> None:
    """DELETE /blobs/<digest>: 202; then GET and HEAD answer 404 BLOB_UNKNOWN."""
    repo, blob = t.repo("del-blob"), random_blob(600)
    await t.push_blob(repo, random_blob(64))  # the repository outlives the deleted blob
    await t.push_blob(repo, blob)
    response = await t.request("DELETE", f"/v2/{repo}/blobs/{blob.digest}")
    if response.status_code == 405:
        raise NotSupported("blob deletion refused with 405")
    t.expect(response, 202)
    t.expect(await t.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}"), 404)
    gone = await t.request("GET", f"/v2/{repo}/blobs/{blob.digest}")
    t.expect_error(gone, [404], ["BLOB_UNKNOWN"])


@check("management", "#deleting-blobs")
async def delete_blob_unknown(t: Context) -> None:
    """DELETE of a blob the repository does not hold: 404 BLOB_UNKNOWN."""
    repo = t.repo("del-blob-unknown")
    await t.push_blob(repo, random_blob(64))
    missing = digest_of(repo.encode())
    response = await t.request("DELETE", f"/v2/{repo}/blobs/{missing}")
    if response.status_code == 405:
        raise NotSupported("blob deletion refused with 405")
    t.expect_error(response, [404], ["BLOB_UNKNOWN"])
