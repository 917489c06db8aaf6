"""Referrers (v1.1): the OCI-Subject header, the referrers index and its filter.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
A registry without the API answers 404 (the spec tells clients to fall back
to the tag schema then), so 404 or 405 here counts as not supported; once a
registry does answer 200, every MUST of the section applies.
"""

from __future__ import annotations

from typing import Any

from conformance.checks._registry import check
from conformance.content import OCI_EMPTY, OCI_INDEX, Manifest, digest_of, oci_manifest
from conformance.context import Context, describe
from conformance.result import CheckFailed, NotSupported

SBOM = "application/vnd.example.conformance.sbom.v1"
SIGNATURE = "application/vnd.example.conformance.signature.v1"


async def referrers(t: Context, repo: str, digest: str, **params: str) -> tuple[list[Any], str]:
    """The descriptors of ``GET /referrers/<digest>`` and its OCI-Filters-Applied header."""
    response = await t.request("GET", f"/v2/{repo}/referrers/{digest}", params=params or None)
    if response.status_code in (404, 405):
        raise NotSupported(f"referrers API answered {response.status_code} (pre-1.1 registry)")
    t.expect(response, 200)
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type != OCI_INDEX:
        raise CheckFailed(f"Content-Type {media_type!r}; the spec requires {OCI_INDEX}")
    document = response.json()
    if document.get("schemaVersion") != 2 or document.get("mediaType") != OCI_INDEX:
        raise CheckFailed(f"not an image index: {response.text[:200]}")
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        raise CheckFailed(f'no "manifests" list: {response.text[:200]}')
    return manifests, response.headers.get("OCI-Filters-Applied", "")


async def subject_with_referrers(t: Context, label: str) -> tuple[str, Manifest, list[Manifest]]:
    """A subject image and two artifacts pointing at it, of different artifact types."""
    repo, subject = t.repo(label), oci_manifest()
    await t.push_manifest(repo, subject, "subject")
    artifacts = [
        oci_manifest(
            artifact_type=SBOM,
            subject=subject,
            empty_config=True,
            annotations={"org.example.conformance.kind": "sbom"},
        ),
        oci_manifest(
            artifact_type=SIGNATURE,
            subject=subject,
            empty_config=True,
            annotations={"org.example.conformance.kind": "signature"},
        ),
    ]
    for artifact in artifacts:
        await t.push_manifest(repo, artifact)
    return repo, subject, artifacts


def find(manifests: list[Any], digest: str) -> dict[str, Any]:
    for descriptor in manifests:
        if isinstance(descriptor, dict) and descriptor.get("digest") == digest:
            return descriptor
    raise CheckFailed(f"{digest} is not among the referrers {manifests!r}")


@check("referrers", "#pushing-manifests-with-subject")
async def oci_subject_header(t: Context) -> None:
    """PUT of a manifest with a subject answers OCI-Subject: <subject digest>."""
    repo, subject = t.repo("oci-subject"), oci_manifest()
    await t.push_manifest(repo, subject, "subject")
    artifact = oci_manifest(artifact_type=SBOM, subject=subject, empty_config=True)
    for blob in artifact.blobs:
        await t.push_blob(repo, blob)
    response = t.expect(await t.put_manifest(repo, artifact, artifact.digest), 201)
    header = response.headers.get("OCI-Subject")
    if header is None:
        # Only registries with the referrers API MUST send it: find out which this is.
        await referrers(t, repo, subject.digest)
        raise CheckFailed(
            f"the referrers API answers but OCI-Subject is missing: {describe(response)}"
        )
    if header != subject.digest:
        raise CheckFailed(f"OCI-Subject {header}; the subject is {subject.digest}")


@check("referrers", "#listing-referrers")
async def referrers_list(t: Context) -> None:
    """The referrers index lists each referrer with mediaType, size, artifactType, annotations."""
    repo, subject, artifacts = await subject_with_referrers(t, "referrers")
    manifests, _ = await referrers(t, repo, subject.digest)
    for artifact, kind in zip(artifacts, ("sbom", "signature"), strict=True):
        entry = find(manifests, artifact.digest)
        expected = {
            "mediaType": artifact.media_type,
            "size": len(artifact.body),
            "artifactType": SBOM if kind == "sbom" else SIGNATURE,
        }
        for key, value in expected.items():
            if entry.get(key) != value:
                raise CheckFailed(f"referrer {key} is {entry.get(key)!r}; expected {value!r}")
        annotations = entry.get("annotations") or {}
        if annotations.get("org.example.conformance.kind") != kind:
            raise CheckFailed(f"referrer annotations {annotations!r} lack the manifest's")
    if len(manifests) != len(artifacts):
        raise CheckFailed(f"expected {len(artifacts)} referrers, got {len(manifests)}")


@check("referrers", "#listing-referrers")
async def referrers_artifact_type_from_config(t: Context) -> None:
    """A referrer without artifactType is listed with its config's mediaType."""
    repo, subject = t.repo("referrers-config"), oci_manifest()
    await t.push_manifest(repo, subject, "subject")
    artifact = oci_manifest(subject=subject)  # config media type: the OCI image config
    await t.push_manifest(repo, artifact)
    manifests, _ = await referrers(t, repo, subject.digest)
    entry = find(manifests, artifact.digest)
    config_type = artifact.blobs[0].media_type
    if entry.get("artifactType") != config_type:
        raise CheckFailed(f"artifactType {entry.get('artifactType')!r}; expected {config_type!r}")


@check("referrers", "#listing-referrers")
async def referrers_filter(t: Context) -> None:
    """?artifactType= returns only that type, with OCI-Filters-Applied: artifactType."""
    repo, subject, artifacts = await subject_with_referrers(t, "referrers-filter")
    manifests, applied = await referrers(t, repo, subject.digest, artifactType=SBOM)
    if "artifacttype" not in [part.strip().lower() for part in applied.split(",")]:
        # Filtering is a SHOULD; an unfiltered answer must still be complete.
        for artifact in artifacts:
            find(manifests, artifact.digest)
        raise NotSupported("artifactType filter not applied (no OCI-Filters-Applied header)")
    if [entry.get("digest") for entry in manifests] != [artifacts[0].digest]:
        raise CheckFailed(f"filtered on {SBOM} but got {manifests!r}")


@check("referrers", "#listing-referrers")
async def referrers_unknown_subject(t: Context) -> None:
    """Referrers of a digest nothing refers to: 200 with an empty index, never 404."""
    repo = t.repo("referrers-empty")
    await t.push_manifest(repo, oci_manifest(), "latest")
    manifests, _ = await referrers(t, repo, digest_of(repo.encode()))
    if manifests:
        raise CheckFailed(f"expected no referrers, got {manifests!r}")


@check("referrers", "#listing-referrers")
async def referrers_invalid_digest(t: Context) -> None:
    """Referrers of a malformed digest: 400."""
    repo = t.repo("referrers-bad")
    await t.push_manifest(repo, oci_manifest(), "latest")
    await referrers(t, repo, digest_of(b"probe"))  # NotSupported when there is no API
    response = await t.request("GET", f"/v2/{repo}/referrers/sha256:not-hex")
    t.expect(response, 400, why="an invalid digest MUST get 400")


@check("referrers", "#listing-referrers")
async def referrers_after_delete(t: Context) -> None:
    """A deleted referrer leaves the referrers index."""
    repo, subject, artifacts = await subject_with_referrers(t, "referrers-delete")
    await referrers(t, repo, subject.digest)
    response = await t.request("DELETE", f"/v2/{repo}/manifests/{artifacts[0].digest}")
    if response.status_code in (400, 405):
        raise NotSupported(f"manifest deletion refused with {response.status_code}")
    t.expect(response, 202)
    manifests, _ = await referrers(t, repo, subject.digest)
    if [entry.get("digest") for entry in manifests] != [artifacts[1].digest]:
        raise CheckFailed(f"after deleting {artifacts[0].digest} the index is {manifests!r}")
    if any(entry.get("artifactType") == OCI_EMPTY for entry in manifests):
        raise CheckFailed("artifactType fell back to the empty config type")
