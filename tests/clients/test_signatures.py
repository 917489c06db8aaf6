"""Signatures as cosign stores them, in both of its layouts, signed for real.

cosign is not packaged here, so the test lays the manifests out as cosign does
and signs with an ECDSA P-256 key; what is checked is what a verifier relies
on: the signature is found where cosign looks, comes back byte for byte, and
still verifies.

- Tag layout (cosign's default before OCI 1.1): a manifest tagged
  ``sha256-<hex>.sig`` whose one layer is the simple-signing payload, with the
  base64 signature in the ``dev.cosignproject.cosign/signature`` annotation.
- Referrer layout (cosign's Sigstore bundle format): a manifest with
  ``artifactType`` ``application/vnd.dev.sigstore.bundle.v0.3+json`` and a
  ``subject``, found through
  https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.clients._layout import OCI_INDEX, OCI_MANIFEST, sha256
from tests.clients.conftest import Registry

pytestmark = pytest.mark.clients

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def push_blob(http: httpx.Client, repo: str, data: bytes) -> dict[str, Any]:
    """Monolithic POST+PUT; returns a descriptor without mediaType."""
    digest = sha256(data)
    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202
    location = started.headers["location"]
    # The location may carry its own query (upload state); add to it, never replace it.
    separator = "&" if "?" in location else "?"
    done = http.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return {"digest": digest, "size": len(data)}


def put_manifest(http: httpx.Client, repo: str, ref: str, manifest: dict[str, Any]) -> bytes:
    body = canonical(manifest)
    response = http.put(
        f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == sha256(body)
    return body


def get_manifest(http: httpx.Client, repo: str, ref: str) -> bytes:
    response = http.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    return response.content


def get_blob(http: httpx.Client, repo: str, digest: str) -> bytes:
    response = http.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
    assert response.status_code == 200
    return response.content


def push_image(http: httpx.Client, repo: str) -> tuple[bytes, dict[str, Any]]:
    """A one-layer image; returns its manifest bytes and its descriptor."""
    layer = push_blob(http, repo, b"signed content\n" * 64)
    config = push_blob(http, repo, canonical({"architecture": "amd64", "os": "linux"}))
    body = put_manifest(
        http,
        repo,
        "v1",
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        },
    )
    return body, {"mediaType": OCI_MANIFEST, "digest": sha256(body), "size": len(body)}


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_cosign_tag_signature(
    http: httpx.Client, registry: Registry, repo: str, key: ec.EllipticCurvePrivateKey
) -> None:
    _, image = push_image(http, repo)
    payload = canonical(
        {
            "critical": {
                "identity": {"docker-reference": f"{registry.address}/{repo}"},
                "image": {"docker-manifest-digest": image["digest"]},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer = push_blob(http, repo, payload)
    config = push_blob(
        http,
        repo,
        canonical(
            {
                "architecture": "",
                "os": "",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
            }
        ),
    )
    tag = image["digest"].replace(":", "-") + ".sig"
    body = put_manifest(
        http,
        repo,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config},
            "layers": [
                {
                    "mediaType": SIMPLESIGNING,
                    **layer,
                    "annotations": {SIGNATURE_ANNOTATION: signature},
                }
            ],
        },
    )

    tags = http.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert sorted(tags) == sorted(["v1", tag])

    # What cosign verify does: fetch the .sig manifest, its payload, check both.
    fetched = get_manifest(http, repo, tag)
    assert fetched == body
    sig_layer = json.loads(fetched)["layers"][0]
    assert sig_layer["mediaType"] == SIMPLESIGNING
    fetched_payload = get_blob(http, repo, sig_layer["digest"])
    assert fetched_payload == payload
    key.public_key().verify(
        base64.b64decode(sig_layer["annotations"][SIGNATURE_ANNOTATION]),
        fetched_payload,
        ec.ECDSA(hashes.SHA256()),
    )
    signed = json.loads(fetched_payload)["critical"]["image"]["docker-manifest-digest"]
    assert sha256(get_manifest(http, repo, "v1")) == signed


def test_sigstore_bundle_referrer(
    http: httpx.Client, repo: str, key: ec.EllipticCurvePrivateKey
) -> None:
    image_body, image = push_image(http, repo)
    signature = key.sign(image_body, ec.ECDSA(hashes.SHA256()))
    bundle = canonical(
        {
            "mediaType": BUNDLE,
            "verificationMaterial": {"publicKey": {"hint": "client-test-key"}},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(hashlib.sha256(image_body).digest()).decode(),
                },
                "signature": base64.b64encode(signature).decode(),
            },
        }
    )
    empty = push_blob(http, repo, b"{}")
    layer = push_blob(http, repo, bundle)
    annotations = {
        "dev.sigstore.bundle.content": "message-signature",
        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": EMPTY, **empty},
        "layers": [{"mediaType": BUNDLE, **layer}],
        "subject": image,
        "annotations": annotations,
    }
    body = canonical(manifest)
    put_manifest(http, repo, sha256(body), manifest)

    for params in ({}, {"artifactType": BUNDLE}):
        listing = http.get(f"/v2/{repo}/referrers/{image['digest']}", params=params)
        assert listing.status_code == 200
        index = listing.json()
        assert index["mediaType"] == OCI_INDEX
        assert index["manifests"] == [
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(body),
                "size": len(body),
                "artifactType": BUNDLE,
                "annotations": annotations,
            }
        ]
    # Pushed by digest only: the bundle is no tag.
    assert http.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]

    assert get_manifest(http, repo, sha256(body)) == body
    fetched = get_blob(http, repo, layer["digest"])
    assert fetched == bundle
    sig = base64.b64decode(json.loads(fetched)["messageSignature"]["signature"])
    key.public_key().verify(sig, get_manifest(http, repo, "v1"), ec.ECDSA(hashes.SHA256()))
