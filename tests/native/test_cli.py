"""The CLI against a served process: push/pull identity, resume, ls/show, oras both ways."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import oras.client
import pytest

from registry.cli.client import NativeClient, scan
from tests.native.conftest import run_cli, tree

pytestmark = pytest.mark.clients


def _run_dir(root: Path) -> dict[str, bytes]:
    contents = {
        "logs/train.log": b"epoch 1 loss 0.9\nepoch 2 loss 0.4\n",
        "results/metrics.json": json.dumps({"accuracy": 0.93}).encode(),
        "results/model.bin": os.urandom(9 << 20),  # more than one client chunk
        "run.json": b'{"run": "r-7"}',
        "empty": b"",
    }
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return contents


def test_push_pull_is_byte_identical_and_repeatable(served: str, tmp_path: Path) -> None:
    contents = _run_dir(tmp_path / "in")
    env = {"SOURCE_DATE_EPOCH": "1714566896", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    link = "jira:ART-1=https://t.example/ART-1"
    args = ["--label", "branch=main", "--link", link, "--retention", "release:90d",
            "--producer", "ci", "--run-id", "r-7", "--server", served]  # fmt: skip
    first = run_cli("push", str(tmp_path / "in"), "ml/model:1", *args, env=env)
    assert first.returncode == 0, first.stderr
    second = run_cli("push", str(tmp_path / "in"), "ml/model:1", *args, env=env)
    assert second.returncode == 0, second.stderr
    assert "5 skipped" in second.stderr
    assert first.stdout.strip() == second.stdout.strip()
    assert first.stdout.strip().startswith("sha256:")

    pulled = run_cli("pull", "ml/model:1", str(tmp_path / "out"), "--server", served)
    assert pulled.returncode == 0, pulled.stderr
    assert tree(tmp_path / "out") == contents

    listed = run_cli("ls", "ml/model", "--label", "branch=main", "--server", served)
    assert listed.stdout.split("\t")[:2] == ["1", first.stdout.strip()]
    shown = json.loads(run_cli("show", "ml/model:1", "--server", served).stdout)
    assert shown["manifest"]["links"] == [
        {"system": "jira", "id": "ART-1", "url": "https://t.example/ART-1"}
    ]
    assert shown["manifest"]["retention"]["class"] == "release"
    missing = run_cli("show", "ml/model:404", "--server", served)
    assert missing.returncode == 2
    assert "MANIFEST_UNKNOWN" in missing.stderr


def test_interrupted_upload_resumes_from_the_session_offset(served: str, tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    data = os.urandom(10 << 20)  # over CHUNK: sent through a resumable session
    (root / "big.bin").write_bytes(data)
    state = tmp_path / "state"
    with NativeClient(served, state) as client:
        ((path, f),) = scan(root)
        # An earlier run got one MiB across and died: its session and state file remain.
        opened = httpx.post(f"{served}/api/v1/artifacts/resume/me/uploads")
        location = opened.headers["location"]
        httpx.patch(f"{served}{location}", content=data[: 1 << 20],
                    headers={"Content-Range": f"0-{(1 << 20) - 1}"})  # fmt: skip
        state_file = client._state_file("resume/me", f.sha256)
        assert state_file is not None
        state_file.parent.mkdir(parents=True)
        state_file.write_text(json.dumps({"location": location}))
        sent: list[int] = []
        how = client.upload_file("resume/me", path, f, lambda p, n: sent.append(n))
    assert how == "resumed"
    assert sent[0] == 1 << 20  # reported as already there, not sent again
    assert sum(sent) == len(data)
    got = httpx.get(f"{served}/v2/resume/me/blobs/{f.sha256}")
    assert hashlib.sha256(got.content).hexdigest() == f.sha256.hex
    assert not state_file.exists()


def test_oras_pulls_a_native_artifact(served: str, tmp_path: Path) -> None:
    contents = _run_dir(tmp_path / "in")
    pushed = run_cli("push", str(tmp_path / "in"), "ml/oras-pull:2", "--server", served,
                     env={"XDG_CACHE_HOME": str(tmp_path / "cache")})  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    client = oras.client.OrasClient(hostname=served.removeprefix("http://"), insecure=True)
    try:
        out = tmp_path / "out"
        client.pull(target=f"{served.removeprefix('http://')}/ml/oras-pull:2", outdir=str(out))
    finally:
        client.session.close()
    assert tree(out) == contents


def test_native_api_reads_what_oras_pushed(served: str, tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "weights.bin").write_bytes(os.urandom(1 << 20))
    (root / "card.md").write_bytes(b"# card\n")
    address = served.removeprefix("http://")
    client = oras.client.OrasClient(hostname=address, insecure=True)
    cwd = Path.cwd()
    try:
        os.chdir(root)  # oras-py titles a file by the path it was given
        client.push(target=f"{address}/ml/from-oras:1", files=["weights.bin", "card.md"])
    finally:
        os.chdir(cwd)
        client.session.close()
    with NativeClient(served) as native_client:
        shown = native_client.show("ml/from-oras", "1")
        assert shown["manifest"]["synth"] is True
        assert all(f["blake3"].startswith("blake3:") for f in shown["manifest"]["files"])
        native_client.pull("ml/from-oras", "1", tmp_path / "out")
    assert tree(tmp_path / "out") == tree(root)
