"""OCI image layouts on disk, built with umoci, and the client commands that move them.

An image-layout (https://github.com/opencontainers/image-spec/blob/v1.1.0/image-layout.md)
is the neutral ground the tests compare against: what goes into the registry
is read from one layout and what comes out is written to another, so equality
of digests is checked on bytes no registry code produced.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"


def run(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 300.0) -> str:
    """Run a client command; a failure shows its output, not just an exit code."""
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(str(a) for a in argv)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return done.stdout


def succeeds(*argv: str | Path, env: dict[str, str] | None = None) -> bool:
    """Whether a command exits 0 (a daemon's readiness probe); its output is dropped."""
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, env=env, timeout=30, check=False
    )
    return done.returncode == 0


def fails(*argv: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a command that must fail; returns it so the caller can check why."""
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode != 0, f"{' '.join(str(a) for a in argv)} unexpectedly succeeded"
    return done


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Layout:
    path: Path

    def index(self) -> dict[str, Any]:
        index: dict[str, Any] = json.loads((self.path / "index.json").read_text())
        return index

    def descriptor(self, tag: str) -> dict[str, Any]:
        """The index.json entry named ``tag``."""
        for desc in self.index()["manifests"]:
            if desc.get("annotations", {}).get(REF_NAME) == tag:
                found: dict[str, Any] = desc
                return found
        raise KeyError(f"{tag} not in {self.path}/index.json")

    def blob(self, digest: str) -> bytes:
        algorithm, hex_ = digest.split(":", 1)
        return (self.path / "blobs" / algorithm / hex_).read_bytes()

    def json_blob(self, digest: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.blob(digest))
        return value

    def manifest(self, tag: str) -> dict[str, Any]:
        return self.json_blob(self.descriptor(tag)["digest"])

    def layer_digests(self, tag: str) -> list[str]:
        return [layer["digest"] for layer in self.manifest(tag)["layers"]]

    def write_blob(self, data: bytes) -> str:
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return digest


def build_image(
    layout_path: Path, tag: str, files: dict[str, bytes], *, architecture: str = "amd64"
) -> Layout:
    """An image with one layer per file (``umoci insert`` each), for linux/``architecture``."""
    if not (layout_path / "index.json").exists():
        run("umoci", "init", "--layout", layout_path)
    image = f"{layout_path}:{tag}"
    run("umoci", "new", "--image", image)
    staging = layout_path.parent / f"{layout_path.name}-files-{tag}"
    staging.mkdir(parents=True, exist_ok=True)
    for number, (dest, content) in enumerate(files.items()):
        source = staging / f"file{number}"
        source.write_bytes(content)
        run("umoci", "insert", "--image", image, source, dest)
    run(
        "umoci",
        "config",
        "--image",
        image,
        "--os",
        "linux",
        "--architecture",
        architecture,
        "--config.cmd",
        "/bin/true",
    )
    return Layout(layout_path)


def add_index(layout: Layout, tag: str, children: dict[str, str]) -> str:
    """Write an image index over the images tagged in ``children`` (tag -> architecture)
    and name it ``tag`` in index.json; returns the index digest."""
    manifests = []
    for child_tag, architecture in children.items():
        desc = layout.descriptor(child_tag)
        manifests.append(
            {
                "mediaType": desc["mediaType"],
                "digest": desc["digest"],
                "size": desc["size"],
                "platform": {"architecture": architecture, "os": "linux"},
            }
        )
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests},
        separators=(",", ":"),
    ).encode()
    digest = layout.write_blob(body)
    index = layout.index()
    index["manifests"].append(
        {
            "mediaType": OCI_INDEX,
            "digest": digest,
            "size": len(body),
            "annotations": {REF_NAME: tag},
        }
    )
    (layout.path / "index.json").write_text(json.dumps(index))
    return digest
