"""containerd, the runtime under most Kubernetes nodes, pulls and unpacks what
skopeo pushed (OCI and Docker schema2), and pushes it under a new name; a
fresh namespace pulls that copy back. Its resolver and pusher are their own
implementation (HEAD before GET, uploads, cross-repository mounts), not the
containers/image library skopeo and podman share.

containerd runs as a private daemon: its own root, state and socket, the
native snapshotter (no overlay mount), and no CRI plugin. ``ctr`` drives it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import running
from tests.clients._layout import DOCKER_MANIFEST, OCI_MANIFEST, build_image, run, succeeds
from tests.clients.conftest import Registry

pytestmark = pytest.mark.clients

Ctr = Callable[..., str]

_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
"""


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctr]:
    home = tmp_path_factory.mktemp("containerd")
    # A unix socket path must fit in 108 bytes; pytest's temporary paths may not.
    run_dir = Path(tempfile.mkdtemp(prefix="ctd-"))
    socket = run_dir / "sock"
    config = home / "config.toml"
    config.write_text(_CONFIG.format(root=home / "root", state=run_dir / "state", socket=socket))

    def ctr(*args: str, namespace: str = "default") -> str:
        return run("ctr", "--address", str(socket), "--namespace", namespace, *args)

    argv = ["containerd", "--config", str(config)]
    try:
        ready = functools.partial(succeeds, "ctr", "--address", str(socket), "version")
        with running("containerd", argv, home / "containerd.log", ready):
            yield ctr
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _image_digest(ctr: Ctr, ref: str, namespace: str = "default") -> str:
    for line in ctr("images", "ls", namespace=namespace).splitlines()[1:]:
        name, _kind, digest, *_ = line.split()
        if name == ref:
            return digest
    raise AssertionError(f"{ref} is not among containerd's images")


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_containerd_pulls_unpacks_and_pushes_under_a_new_name(
    ctr: Ctr, registry: Registry, repo: str, http: httpx.Client, tmp_path: Path, fmt: str
) -> None:
    layout = build_image(
        tmp_path / "layout", "v1", {"/hello": b"containerd\n", "/data": os.urandom(1 << 20)}
    )
    extra = ["--format", "v2s2"] if fmt == "v2s2" else []
    run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", *extra,
        f"oci:{layout.path}:v1", registry.ref(repo, "v1"))  # fmt: skip
    accept = {"Accept": DOCKER_MANIFEST if fmt == "v2s2" else OCI_MANIFEST}
    pushed = http.get(f"/v2/{repo}/manifests/v1", headers=accept)
    assert pushed.status_code == 200
    digest = pushed.headers["Docker-Content-Digest"]
    layers = [layer["digest"] for layer in json.loads(pushed.content)["layers"]]

    original = f"{registry.address}/{repo}:v1"
    ctr("images", "pull", "--plain-http", "--snapshotter", "native", original)
    assert _image_digest(ctr, original) == digest
    # Unpacked: each layer became a snapshot, so every byte was fetched and checked.
    assert ctr("images", "check", f"name=={original}").count("complete") == 1
    content = ctr("content", "ls", "--quiet").split()
    assert set(layers) <= set(content)

    copy = f"{registry.address}/{repo}-copy:v2"
    ctr("images", "tag", original, copy)
    ctr("images", "push", "--plain-http", copy)
    copied = http.head(f"/v2/{repo}-copy/manifests/v2", headers=accept)
    assert copied.headers["Docker-Content-Digest"] == digest
    for layer in layers:  # uploaded or mounted from the source repository
        assert http.head(f"/v2/{repo}-copy/blobs/{layer}").status_code == 200

    namespace = f"fresh-{fmt}"
    ctr("images", "pull", "--plain-http", "--snapshotter", "native", copy, namespace=namespace)
    assert _image_digest(ctr, copy, namespace) == digest
