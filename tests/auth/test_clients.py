"""Real clients against ``artifact-store serve --auth``: skopeo and oras-py.

The server is a separate process on loopback; accounts are made with the
``admin user`` CLI, as an operator would. Its log is checked at the end for
the secrets the session used (they must never be logged).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import oras.client
import pytest

from bench.servers import artifact_store_command, free_port
from tests.clients._layout import build_image, fails, run

pytestmark = pytest.mark.clients

ALICE_PW = "alice-client-pw-7b1f"
BOB_PW = "bob-client-pw-93ce"


@dataclass
class Served:
    address: str
    data_dir: Path
    log: Path
    secrets: list[str]


def _cli(data_dir: Path, *argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*artifact_store_command(), "admin", *argv, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("auth-served")
    data_dir = root / "data"
    _cli(
        data_dir,
        "user",
        "add",
        "alice",
        "--tenant",
        "acme",
        "--role",
        "maintainer",
        "--password-stdin",
        stdin=ALICE_PW + "\n",
    )
    _cli(
        data_dir,
        "user",
        "add",
        "bob",
        "--tenant",
        "globex",
        "--role",
        "maintainer",
        "--password-stdin",
        stdin=BOB_PW + "\n",
    )
    _cli(
        data_dir,
        "user",
        "add",
        "ci",
        "--tenant",
        "acme",
        "--role",
        "writer",
        "--robot",
        "--no-password",
    )
    robot_token = _cli(data_dir, "user", "token", "ci").strip()
    port = free_port()
    log = root / "server.log"
    env = {**os.environ, "ARTIFACT_STORE_LOG_LEVEL": "DEBUG"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *artifact_store_command(),
                "serve",
                "--auth",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(data_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            subprocess.run(["sleep", "0.1"], check=True)
        yield Served(f"127.0.0.1:{port}", data_dir, log, [ALICE_PW, BOB_PW, robot_token])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_skopeo_copy_with_dest_creds_and_login(served: Served, tmp_path: Path) -> None:
    layout = build_image(tmp_path / "layout", "v1", {"/hello.txt": b"hello auth\n"})
    dest = f"docker://{served.address}/acme/app:v1"
    no_tls = "--dest-tls-verify=false"
    # Without credentials, and with another tenant's, the push is refused.
    fails("skopeo", "copy", no_tls, f"oci:{layout.path}:v1", dest)
    fails("skopeo", "copy", no_tls, f"--dest-creds=bob:{BOB_PW}", f"oci:{layout.path}:v1", dest)
    run("skopeo", "copy", no_tls, f"--dest-creds=alice:{ALICE_PW}", f"oci:{layout.path}:v1", dest)

    authfile = tmp_path / "auth.json"
    run(
        "skopeo",
        "login",
        "--tls-verify=false",
        "--authfile",
        authfile,
        "-u",
        "alice",
        "--password",
        ALICE_PW,
        served.address,
    )
    inspected = run(
        "skopeo", "inspect", "--tls-verify=false", "--authfile", authfile, "--raw", dest
    )
    assert '"layers"' in inspected
    fails("skopeo", "inspect", "--tls-verify=false", "--raw", dest)
    fails("skopeo", "inspect", "--tls-verify=false", f"--creds=bob:{BOB_PW}", "--raw", dest)
    fails(
        "skopeo",
        "login",
        "--tls-verify=false",
        "--authfile",
        tmp_path / "bad.json",
        "-u",
        "alice",
        "--password",
        "wrong",
        served.address,
    )


def test_oras_py_login_push_pull(served: Served, tmp_path: Path) -> None:
    payload = tmp_path / "model.bin"
    payload.write_bytes(os.urandom(1 << 20))
    target = f"{served.address}/acme/models:v1"
    client = oras.client.OrasClient(hostname=served.address, insecure=True)
    try:
        client.login(username="alice", password=ALICE_PW, tls_verify=False)
        pushed = client.push(
            target=target, files=[str(payload)], disable_path_validation=True, quiet=True
        )
        assert pushed.status_code == 201
        out = tmp_path / "out"
        pulled = client.pull(target=target, outdir=str(out))
        assert [Path(p).read_bytes() for p in pulled] == [payload.read_bytes()]
    finally:
        client.session.close()

    intruder = oras.client.OrasClient(hostname=served.address, insecure=True)
    try:
        intruder.login(username="bob", password=BOB_PW, tls_verify=False)
        # oras-py logs the registry's message and raises ValueError naming the URL.
        with pytest.raises(ValueError, match="manifests/v1"):
            intruder.pull(target=target, outdir=str(tmp_path / "stolen"))
    finally:
        intruder.session.close()
    assert not (tmp_path / "stolen").exists() or not any((tmp_path / "stolen").iterdir())


def test_robot_token_pushes_with_basic_auth(served: Served) -> None:
    token = served.secrets[2]
    with httpx.Client(base_url=f"http://{served.address}", auth=("ci", token)) as http:
        started = http.post("/v2/acme/ci/blobs/uploads/")
        assert started.status_code == 202, started.text
        denied = http.delete("/v2/acme/ci/blobs/uploads/x")
        assert denied.status_code in (204, 404)
        foreign = http.post("/v2/globex/ci/blobs/uploads/")
        assert foreign.status_code == 403


def test_secrets_never_reach_the_log(served: Served) -> None:
    # Runs last in this module: the log holds the whole session by now.
    with httpx.Client(base_url=f"http://{served.address}") as http:
        assert http.get("/v2/", auth=("alice", "not-" + ALICE_PW)).status_code == 401
    text = served.log.read_text(errors="replace")
    assert "artifact-store serving" in text or "Running on" in text or text
    for secret in served.secrets:
        assert secret not in text
    assert "not-" + ALICE_PW not in text
