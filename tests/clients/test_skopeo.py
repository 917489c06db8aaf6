"""skopeo against the registry: OCI and Docker schema2 round trips, inspect,
tag listing, delete, and a multi-platform index copied with ``--all``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.clients._layout import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    Layout,
    add_index,
    build_image,
    fails,
    run,
    sha256,
)
from tests.clients.conftest import Registry

pytestmark = pytest.mark.clients

SKOPEO = ("skopeo", "--insecure-policy")
NO_TLS = "--tls-verify=false"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """Three layers, one of them 2 MiB of incompressible bytes so uploads span many reads."""
    path = tmp_path_factory.mktemp("source") / "layout"
    return build_image(
        path,
        "v1",
        {
            "/etc/motd": b"hello from a client test\n",
            "/opt/data.bin": os.urandom(2 << 20),
            "/srv/config.json": json.dumps({"answer": 42}).encode(),
        },
    )


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, str]:
    path = tmp_path_factory.mktemp("multi") / "layout"
    build_image(path, "amd64", {"/arch": b"amd64\n"}, architecture="amd64")
    layout = build_image(path, "arm64", {"/arch": b"arm64\n"}, architecture="arm64")
    return layout, add_index(layout, "multi", {"amd64": "amd64", "arm64": "arm64"})


def push(source: Layout, registry: Registry, repo: str, tag: str, *extra: str) -> None:
    run(*SKOPEO, "copy", "--dest-tls-verify=false", *extra, f"oci:{source.path}:v1",
        registry.ref(repo, tag))  # fmt: skip


def raw_manifest(registry: Registry, repo: str, ref: str) -> bytes:
    # --raw prints the manifest exactly as the registry served it.
    return run(*SKOPEO, "inspect", NO_TLS, "--raw", registry.ref(repo, ref)).encode()


def test_oci_round_trip_keeps_manifest_and_layer_digests(
    source: Layout, registry: Registry, repo: str, tmp_path: Path
) -> None:
    push(source, registry, repo, "v1")
    want = source.descriptor("v1")["digest"]

    out = Layout(tmp_path / "out")
    run(*SKOPEO, "copy", "--src-tls-verify=false", registry.ref(repo, "v1"), f"oci:{out.path}:v1")
    assert out.descriptor("v1")["digest"] == want
    assert out.layer_digests("v1") == source.layer_digests("v1")
    for digest in source.layer_digests("v1"):
        assert out.blob(digest) == source.blob(digest)

    plain = tmp_path / "dir"
    run(*SKOPEO, "copy", "--src-tls-verify=false", registry.ref(repo, "v1"), f"dir:{plain}")
    manifest_bytes = (plain / "manifest.json").read_bytes()
    assert sha256(manifest_bytes) == want
    manifest = json.loads(manifest_bytes)
    assert [layer["digest"] for layer in manifest["layers"]] == source.layer_digests("v1")
    for layer in manifest["layers"]:
        assert sha256((plain / layer["digest"].split(":")[1]).read_bytes()) == layer["digest"]


def test_docker_schema2_push_and_pull(
    source: Layout, registry: Registry, repo: str, tmp_path: Path
) -> None:
    push(source, registry, repo, "v2s2", "--format", "v2s2")
    body = raw_manifest(registry, repo, "v2s2")
    manifest = json.loads(body)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    # Converting the manifest format keeps the compressed layer bytes as they are.
    assert [layer["digest"] for layer in manifest["layers"]] == source.layer_digests("v1")

    plain = tmp_path / "dir"
    run(*SKOPEO, "copy", "--src-tls-verify=false", registry.ref(repo, "v2s2"), f"dir:{plain}")
    assert (plain / "manifest.json").read_bytes() == body
    for digest in source.layer_digests("v1"):
        assert (plain / digest.split(":")[1]).read_bytes() == source.blob(digest)
    # The manifest is addressable by the digest of the bytes the registry stored.
    by_digest = raw_manifest(registry, repo, sha256(body))
    assert by_digest == body


def test_inspect_reports_digest_tags_and_layers(
    source: Layout, registry: Registry, repo: str
) -> None:
    push(source, registry, repo, "v1")
    info = json.loads(run(*SKOPEO, "inspect", NO_TLS, registry.ref(repo, "v1")))
    assert info["Digest"] == source.descriptor("v1")["digest"]
    assert info["Layers"] == source.layer_digests("v1")
    assert info["Architecture"] == "amd64"
    assert info["RepoTags"] == ["v1"]
    assert sha256(raw_manifest(registry, repo, "v1")) == info["Digest"]


def test_list_tags(source: Layout, registry: Registry, repo: str) -> None:
    for tag in ("v1", "1.0.0", "latest"):
        push(source, registry, repo, tag)
    listing = json.loads(run(*SKOPEO, "list-tags", NO_TLS, registry.ref(repo)))
    assert sorted(listing["Tags"]) == ["1.0.0", "latest", "v1"]


def test_delete_then_inspect_fails(source: Layout, registry: Registry, repo: str) -> None:
    push(source, registry, repo, "v1")
    digest = source.descriptor("v1")["digest"]
    run(*SKOPEO, "delete", NO_TLS, registry.ref(repo, "v1"))
    gone = fails(*SKOPEO, "inspect", NO_TLS, "--raw", registry.ref(repo, "v1"))
    assert "manifest unknown" in gone.stderr.lower()
    fails(*SKOPEO, "inspect", NO_TLS, "--raw", registry.ref(repo, digest))


def test_multi_platform_index_with_all(
    multi: tuple[Layout, str], registry: Registry, repo: str, tmp_path: Path
) -> None:
    layout, index_digest = multi
    run(*SKOPEO, "copy", "--all", "--dest-tls-verify=false", f"oci:{layout.path}:multi",
        registry.ref(repo, "multi"))  # fmt: skip

    body = raw_manifest(registry, repo, "multi")
    assert sha256(body) == index_digest
    assert json.loads(body)["mediaType"] == OCI_INDEX
    for arch in ("amd64", "arm64"):
        info = json.loads(
            run(*SKOPEO, "--override-arch", arch, "inspect", NO_TLS, registry.ref(repo, "multi"))
        )
        # skopeo reports the digest it was given (the index); the layers are the child's.
        assert info["Digest"] == index_digest
        assert info["Layers"] == layout.layer_digests(arch)
        assert info["Architecture"] == arch

    out = Layout(tmp_path / "out")
    run(*SKOPEO, "copy", "--all", "--src-tls-verify=false", registry.ref(repo, "multi"),
        f"oci:{out.path}:multi")  # fmt: skip
    assert out.descriptor("multi")["digest"] == index_digest
    for arch in ("amd64", "arm64"):
        child = layout.descriptor(arch)["digest"]
        assert out.blob(child) == layout.blob(child)
        for digest in layout.layer_digests(arch):
            assert out.blob(digest) == layout.blob(digest)
