"""podman pulls what skopeo pushed, re-tags and pushes it under a new name,
and pulls that back: the image (its config digest, which podman calls the
image ID) survives both trips.

podman runs rootful with the vfs storage driver in a private root, run root
and HOME, so it needs no overlay mount, no systemd and no user configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clients._layout import Layout, build_image, run
from tests.clients.conftest import Registry

pytestmark = pytest.mark.clients

Podman = Callable[..., str]


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    home = tmp_path / "home"
    for sub in ("root", "run", "home"):
        (tmp_path / sub).mkdir()
    # podman refuses a run root longer than 50 characters; pytest's paths are longer.
    runroot = Path(tempfile.mkdtemp(prefix="podman-run-"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }
    base = (
        "podman",
        "--storage-driver",
        "vfs",
        "--root",
        str(tmp_path / "root"),
        "--runroot",
        str(runroot),
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
    )

    def podman(*args: str) -> str:
        return run(*base, *args, env=env)

    yield podman
    shutil.rmtree(runroot, ignore_errors=True)


def test_pull_tag_push_pull(podman: Podman, registry: Registry, repo: str, tmp_path: Path) -> None:
    layout: Layout = build_image(
        tmp_path / "layout", "v1", {"/hello": b"podman\n", "/data": os.urandom(1 << 20)}
    )
    run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
        f"oci:{layout.path}:v1", registry.ref(repo, "v1"))  # fmt: skip
    config_digest = layout.manifest("v1")["config"]["digest"]

    original = f"{registry.address}/{repo}:v1"
    podman("pull", "--tls-verify=false", original)
    image_id = podman("image", "inspect", "--format", "{{.Id}}", original).strip()
    assert f"sha256:{image_id}" == config_digest

    copy = f"{registry.address}/{repo}-copy:v2"
    podman("tag", original, copy)
    podman("push", "--tls-verify=false", copy)
    podman("rmi", original, copy)
    assert podman("images", "--quiet").strip() == ""

    podman("pull", "--tls-verify=false", copy)
    assert podman("image", "inspect", "--format", "{{.Id}}", copy).strip() == image_id
    # The registry holds the pushed copy under its new name, with the same config.
    raw = run("skopeo", "inspect", "--tls-verify=false", "--raw",
              registry.ref(f"{repo}-copy", "v2"))  # fmt: skip
    manifest = json.loads(raw)
    assert manifest["config"]["digest"] == config_digest
    assert len(manifest["layers"]) == len(layout.layer_digests("v1"))
    history = podman("image", "inspect", "--format", "{{json .RootFS.Layers}}", copy)
    assert len(json.loads(history)) == len(layout.layer_digests("v1"))
