"""Push, manifests: every media type, by tag and by digest, and the ways a PUT is refused.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests
"""

from __future__ import annotations

import httpx

from conformance.checks._registry import check
from conformance.checks.pull import ACCEPT, verify_manifest_response
from conformance.content import (
    Manifest,
    digest_of,
    docker_manifest,
    docker_manifest_list,
    oci_index,
    oci_manifest,
    random_blob,
    with_external_layer,
)
from conformance.context import Context, error_codes
from conformance.result import CheckFailed, NotSupported


def verify_put(t: Context, response: httpx.Response, manifest: Manifest) -> None:
    """201 with a Location; Docker-Content-Digest, when sent, MUST equal the pushed digest."""
    t.expect(response, 201)
    t.location(response)
    digest = response.headers.get("Docker-Content-Digest")
    if digest is not None and digest != manifest.digest:
        raise CheckFailed(f"Docker-Content-Digest {digest}; the manifest is {manifest.digest}")


async def push_and_read(t: Context, repo: str, manifest: Manifest, reference: str) -> None:
    for child in manifest.children:
        await t.push_manifest(repo, child)
    for blob in manifest.blobs:
        await t.push_blob(repo, blob)
    response = await t.put_manifest(repo, manifest, reference)
    if manifest.media_type.startswith("application/vnd.docker.") and response.status_code in (
        400,
        415,
    ):
        # The spec is about OCI types; Docker's are a courtesy a registry may decline.
        raise NotSupported(f"{manifest.media_type} refused with {response.status_code}")
    verify_put(t, response, manifest)
    for ref in {reference, manifest.digest}:
        got = await t.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
        verify_manifest_response(got, manifest, head=False)


@check("push", "#pushing-manifests")
async def manifest_put_oci_by_tag(t: Context) -> None:
    """PUT an OCI image manifest by tag: 201 + Location; readable by tag and by digest."""
    await push_and_read(t, t.repo("oci-tag"), oci_manifest(), "v1")


@check("push", "#pushing-manifests")
async def manifest_put_oci_by_digest(t: Context) -> None:
    """PUT an OCI image manifest by its digest: 201 + Location; readable by digest."""
    manifest = oci_manifest()
    await push_and_read(t, t.repo("oci-digest"), manifest, manifest.digest)


@check("push", "#pushing-manifests")
async def manifest_put_oci_index(t: Context) -> None:
    """PUT an OCI image index over two pushed manifests: 201; readable with its media type."""
    index = oci_index([oci_manifest(), oci_manifest()], {"org.example.kind": "index"})
    await push_and_read(t, t.repo("oci-index"), index, "multi")


@check("push", "#pushing-manifests")
async def manifest_put_docker_schema2(t: Context) -> None:
    """PUT a Docker schema2 manifest: stored and served as pushed."""
    await push_and_read(t, t.repo("docker-v2"), docker_manifest(), "v2")


@check("push", "#pushing-manifests")
async def manifest_put_docker_manifest_list(t: Context) -> None:
    """PUT a Docker manifest list over two schema2 manifests: stored and served as pushed."""
    listing = docker_manifest_list([docker_manifest(), docker_manifest()])
    await push_and_read(t, t.repo("docker-list"), listing, "list")


@check("push", "#pushing-manifests")
async def manifest_put_same_tag_moves(t: Context) -> None:
    """A second PUT of the same tag moves it to the new manifest."""
    repo, first, second = t.repo("retag"), oci_manifest(), oci_manifest()
    await t.push_manifest(repo, first, "moving")
    await t.push_manifest(repo, second, "moving")
    got = await t.request("GET", f"/v2/{repo}/manifests/moving", headers={"Accept": ACCEPT})
    verify_manifest_response(got, second, head=False)
    old = await t.request("GET", f"/v2/{repo}/manifests/{first.digest}", headers={"Accept": ACCEPT})
    verify_manifest_response(old, first, head=False)


@check("push", "#push")
async def manifest_blob_unknown(t: Context) -> None:
    """A manifest naming a layer never uploaded: 400 MANIFEST_BLOB_UNKNOWN, nothing stored.

    Rejecting is a MAY; a registry that accepts dangling references is
    reported as not supporting the check.
    """
    repo = t.repo("blob-missing")
    manifest = oci_manifest(layers=2)
    config, present, _missing = manifest.blobs
    await t.push_blob(repo, config)
    await t.push_blob(repo, present)
    response = await t.put_manifest(repo, manifest, "dangling")
    if response.status_code == 201:
        raise NotSupported("the registry accepts manifests whose blobs are missing (a MAY)")
    t.expect_error(response, [400], ["MANIFEST_BLOB_UNKNOWN"])
    absent = await t.request("HEAD", f"/v2/{repo}/manifests/dangling", headers={"Accept": ACCEPT})
    t.expect(absent, 404, why="a refused manifest must not be tagged")


@check("push", "#pushing-manifests")
async def manifest_invalid(t: Context) -> None:
    """Bytes that are no manifest, or a manifest of schemaVersion 3: 400 MANIFEST_INVALID."""
    repo = t.repo("invalid")
    await t.push_blob(repo, random_blob(64))
    valid = oci_manifest()
    bad_version = valid.body.replace(b'"schemaVersion": 2', b'"schemaVersion": 3')
    cases = {"bytes that are not JSON": b"this is not json {", "schemaVersion 3": bad_version}
    for case, body in cases.items():
        response = await t.request(
            "PUT",
            f"/v2/{repo}/manifests/broken",
            headers={"Content-Type": valid.media_type},
            content=body,
        )
        if response.status_code == 201:
            t.cleanup_later(f"/v2/{repo}/manifests/{digest_of(body)}")
        try:
            t.expect_error(response, [400], ["MANIFEST_INVALID"])
        except CheckFailed as exc:
            raise CheckFailed(f"{case}: {exc}") from exc


@check("push", "#push")
async def manifest_subject_missing_accepted(t: Context) -> None:
    """A manifest whose subject does not exist MUST be accepted (push referrers in any order)."""
    repo = t.repo("subject-missing")
    ghost = oci_manifest()  # never pushed
    referrer = oci_manifest(
        artifact_type="application/vnd.example.conformance.v1", subject=ghost, empty_config=True
    )
    for blob in referrer.blobs:
        await t.push_blob(repo, blob)
    verify_put(t, await t.put_manifest(repo, referrer, referrer.digest), referrer)
    got = await t.request(
        "GET", f"/v2/{repo}/manifests/{referrer.digest}", headers={"Accept": ACCEPT}
    )
    verify_manifest_response(got, referrer, head=False)


@check("push", "#pushing-manifests")
async def manifest_put_with_tag_parameters(t: Context) -> None:
    """PUT by digest with ``?tag=`` (OCI 1.1.1, optional): ``OCI-Tag`` names every tag
    applied, and each resolves to the manifest. Without ``OCI-Tag``: unsupported."""
    repo, manifest = t.repo("tag-params"), oci_manifest()
    for blob in manifest.blobs:
        await t.push_blob(repo, blob)
    tags = ["1.2.3", "1.2", "latest"]
    query = "&".join(f"tag={tag}" for tag in tags)
    response = await t.put_manifest(repo, manifest, manifest.digest, query)
    verify_put(t, response, manifest)
    announced = [
        tag.strip()
        for header in response.headers.get_list("OCI-Tag")
        for tag in header.split(",")
        if tag.strip()
    ]
    if not announced:
        raise NotSupported("no OCI-Tag header: tag parameters are not taken")
    if sorted(announced) != sorted(tags):
        raise CheckFailed(f"OCI-Tag names {announced}; the PUT asked for {tags}")
    for tag in tags:
        got = await t.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        verify_manifest_response(got, manifest, head=False)


@check("push", "#pushing-manifests")
async def manifest_non_distributable_layer(t: Context) -> None:
    """A manifest with a non-distributable layer carrying ``urls``, its bytes never pushed:
    accepted and served as pushed. A registry MAY insist on every blob (400
    MANIFEST_BLOB_UNKNOWN): unsupported."""
    repo, manifest = t.repo("external-layer"), with_external_layer(oci_manifest())
    for blob in manifest.blobs:
        await t.push_blob(repo, blob)
    response = await t.put_manifest(repo, manifest, "external")
    if response.status_code == 400 and error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]:
        raise NotSupported("a layer that lives at its urls must be pushed too")
    verify_put(t, response, manifest)
    got = await t.request("GET", f"/v2/{repo}/manifests/external", headers={"Accept": ACCEPT})
    verify_manifest_response(got, manifest, head=False)
