"""Docker: the daemon pulls what skopeo pushed, pushes it under a new name (its
layers mounted from the first repository), pushes an image it made itself
(new layers uploaded the way docker uploads: PATCH without Content-Range),
and pulls both back: the image IDs (config digests) survive every trip.

dockerd runs as a private daemon: its own data root, exec root and socket,
the vfs storage driver, and no bridge or iptables, so it touches nothing
outside its directories. Registries on 127.0.0.0/8 are plain HTTP to docker
without configuration.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import running
from tests.clients._layout import add_index, build_image, run, succeeds
from tests.clients.conftest import Registry

pytestmark = pytest.mark.clients

Docker = Callable[..., str]


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    home = tmp_path_factory.mktemp("docker")
    # Unix socket paths must fit in 108 bytes; pytest's temporary paths may not.
    run_dir = Path(tempfile.mkdtemp(prefix="dkd-"))
    host = f"unix://{run_dir / 'sock'}"
    argv = [
        "dockerd", "--host", host, "--data-root", str(home / "root"),
        "--exec-root", str(run_dir / "exec"), "--pidfile", str(run_dir / "pid"),
        "--storage-driver", "vfs", "--bridge", "none", "--iptables=false",
        "--ip6tables=false", "--ip-masq=false",
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}

    def docker(*args: str, stdin: bytes | None = None) -> str:
        if stdin is None:
            return run("docker", "--host", host, *args, env=env)
        done = subprocess.run(
            ["docker", "--host", host, *args], input=stdin, capture_output=True, env=env,
            timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    try:
        ready = functools.partial(succeeds, "docker", "--host", host, "version", env=env)
        with running("dockerd", argv, home / "dockerd.log", ready):
            yield docker
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(home / "root", ignore_errors=True)


def _image_id(docker: Docker, ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).strip()


def test_docker_pulls_pushes_under_a_new_name_and_pulls_back(
    docker: Docker, registry: Registry, repo: str, tmp_path: Path
) -> None:
    layout = build_image(
        tmp_path / "layout", "v1", {"/hello": b"docker\n", "/data": os.urandom(1 << 20)}
    )
    run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
        f"oci:{layout.path}:v1", registry.ref(repo, "v1"))  # fmt: skip
    config_digest = layout.manifest("v1")["config"]["digest"]

    original = f"{registry.address}/{repo}:v1"
    docker("pull", original)
    assert _image_id(docker, original) == config_digest

    copy = f"{registry.address}/{repo}-copy:v2"
    docker("tag", original, copy)
    pushed = docker("push", copy)
    assert "Mounted from" in pushed  # the layers came across without being uploaded
    docker("rmi", original, copy)
    docker("pull", copy)
    assert _image_id(docker, copy) == config_digest
    docker("rmi", copy)


def test_docker_uploads_a_layer_it_made_and_pulls_it_back(
    docker: Docker, registry: Registry, repo: str, http: httpx.Client
) -> None:
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        payload = os.urandom(3 << 20)  # incompressible: the upload really is megabytes
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    ref = f"{registry.address}/{repo}:imported"
    docker("import", "-", ref, stdin=rootfs.getvalue())
    image_id = _image_id(docker, ref)
    pushed = docker("push", ref)
    assert "Pushed" in pushed
    docker("rmi", ref)
    docker("pull", ref)
    assert _image_id(docker, ref) == image_id
    listed = http.get(f"/v2/{repo}/tags/list")
    assert listed.json()["tags"] == ["imported"]
    docker("rmi", ref)


def test_docker_pulls_its_own_platform_from_an_index(
    docker: Docker, registry: Registry, repo: str, tmp_path: Path
) -> None:
    path = tmp_path / "layout"
    build_image(path, "amd64", {"/arch": b"amd64\n"}, architecture="amd64")
    layout = build_image(path, "arm64", {"/arch": b"arm64\n"}, architecture="arm64")
    add_index(layout, "multi", {"amd64": "amd64", "arm64": "arm64"})
    run("skopeo", "--insecure-policy", "copy", "--all", "--dest-tls-verify=false",
        f"oci:{layout.path}:multi", registry.ref(repo, "multi"))  # fmt: skip
    ref = f"{registry.address}/{repo}:multi"
    docker("pull", "--platform", "linux/arm64", ref)
    assert _image_id(docker, ref) == layout.manifest("arm64")["config"]["digest"]
    docker("rmi", ref)
    docker("pull", "--platform", "linux/amd64", ref)
    assert _image_id(docker, ref) == layout.manifest("amd64")["config"]["digest"]
    docker("rmi", ref)
