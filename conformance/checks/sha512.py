"""sha512 content: blobs and manifests addressed by a sha512 digest.

Digests are ``algorithm:encoded`` and sha512 is a registered algorithm
(https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#registered-algorithms);
the distribution spec's ``Docker-Content-Digest`` "MAY differ from the
provided digest" when algorithms differ
(https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-blobs).
Supporting sha512 is optional, so a 400 refusing the algorithm is not supported.
"""

from __future__ import annotations

from conformance.checks._registry import check
from conformance.checks.pull import ACCEPT, verify_manifest_response
from conformance.checks.push_blobs import OCTETS, start
from conformance.content import Blob, digest_of, oci_manifest, random_blob
from conformance.context import Context, describe
from conformance.result import CheckFailed, NotSupported


@check("sha512", "#post-then-put")
async def sha512_blob_upload(t: Context) -> None:
    """PUT ?digest=sha512:... stores the blob; GET and HEAD by that digest return it."""
    repo, blob = t.repo("sha512-blob"), random_blob(1200, algorithm="sha512")
    location = await start(t, repo)
    done = await t.request(
        "PUT", location, params={"digest": blob.digest}, headers=OCTETS, content=blob.data
    )
    if done.status_code in (400, 405):
        await t.request("DELETE", location)
        raise NotSupported(f"sha512 upload refused: {describe(done)}")
    t.expect(done, 201)
    t.cleanup_later(f"/v2/{repo}/blobs/{blob.digest}")
    response = t.expect(await t.get_following(f"/v2/{repo}/blobs/{blob.digest}"), 200)
    if response.content != blob.data:
        raise CheckFailed("the sha512 blob reads back different bytes")
    digest = response.headers.get("Docker-Content-Digest")
    if digest is not None and digest != digest_of(blob.data, digest.partition(":")[0]):
        raise CheckFailed(f"Docker-Content-Digest {digest} does not match the body")
    t.expect(await t.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}"), 200)


@check("sha512", "#post-then-put")
async def sha512_wrong_digest(t: Context) -> None:
    """PUT ?digest=sha512: of other content: 400 DIGEST_INVALID, as for sha256."""
    repo, blob = t.repo("sha512-wrong"), random_blob(700)
    claimed = Blob(b"other" + blob.data, algorithm="sha512")
    location = await start(t, repo)
    done = await t.request(
        "PUT", location, params={"digest": claimed.digest}, headers=OCTETS, content=blob.data
    )
    t.expect_error(done, [400], ["DIGEST_INVALID"])


@check("sha512", "#pushing-manifests")
async def sha512_manifest_by_digest(t: Context) -> None:
    """PUT a manifest by its sha512 digest; GET by that digest returns the same bytes."""
    repo, manifest = t.repo("sha512-manifest"), oci_manifest()
    for blob in manifest.blobs:
        await t.push_blob(repo, blob)
    reference = digest_of(manifest.body, "sha512")
    response = await t.put_manifest(repo, manifest, reference)
    if response.status_code in (400, 405):
        raise NotSupported(f"manifest PUT by sha512 digest refused: {describe(response)}")
    t.expect(response, 201)
    t.cleanup_later(f"/v2/{repo}/manifests/{reference}")
    got = await t.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    t.expect(got, 200)
    if got.content != manifest.body:
        raise CheckFailed("the manifest read by its sha512 digest differs from the bytes pushed")
    # The sha256 view of the same bytes is what verify_manifest_response compares against.
    digest = got.headers.get("Docker-Content-Digest")
    if digest is not None and digest not in (reference, manifest.digest):
        raise CheckFailed(f"Docker-Content-Digest {digest} names neither digest of the manifest")
    by_sha256 = await t.request(
        "GET", f"/v2/{repo}/manifests/{manifest.digest}", headers={"Accept": ACCEPT}
    )
    if by_sha256.status_code == 200:
        verify_manifest_response(by_sha256, manifest, head=False)
