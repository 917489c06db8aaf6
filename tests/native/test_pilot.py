"""docs/pilot.md, executed: the commands are read from the page and run as written."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import httpx
import pytest

from tests.native.conftest import run_cli, tree

pytestmark = pytest.mark.clients

PAGE = Path(__file__).parents[2] / "docs" / "pilot.md"


def command(marker: str) -> list[str]:
    """The shell block after ``<!-- pilot:marker -->``, split as a shell would."""
    text = PAGE.read_text()
    match = re.search(rf"<!-- pilot:{marker} -->\n```sh\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"docs/pilot.md has no pilot:{marker} block"
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_pilot(served: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run-2024-05-01"
    contents = {
        "logs/train.log": b"step 1 loss 0.7\nstep 2 loss 0.3\n",
        "results/metrics.json": b'{"auc": 0.91}',
        "results/model.bin": os.urandom(2 << 20),
        "run.json": json.dumps({"run": "run-2024-05-01", "seed": 7}).encode(),
    }
    for rel, data in contents.items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_bytes(data)
    env = {"ARTIFACT_STORE_SERVER": served, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        push = command("push")
        assert push[:2] == ["artifact-store", "push"]
        pushed = run_cli(*push[1:], env=env)
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.strip().splitlines()[-1]

        tail = command("events")
        assert tail[:3] == ["artifact-store", "events", "tail"]
        assert "--no-follow" in tail  # else it would wait for new events
        tailed = run_cli(*tail[1:], env=env)
        assert tailed.returncode == 0, tailed.stderr
        events = [json.loads(line) for line in tailed.stdout.splitlines()]
        assert {e["type"] for e in events} == {"manifest.put"}
        puts = [e for e in events if "run-2024-05-01" in e["payload"]["tags"]]
        assert [e["payload"]["digest"] for e in puts] == [digest]

        listed = run_cli(*command("ls")[1:], env=env)
        assert listed.stdout.split("\t")[:2] == ["run-2024-05-01", digest]
        shown = json.loads(run_cli(*command("show")[1:], env=env).stdout)["manifest"]
        assert shown["links"][0]["id"] == "ML-42"
        assert shown["retention"]["class"] == "scratch"
        assert shown["run"] == "run-2024-05-01"

        pulled = run_cli(*command("pull")[1:], env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert tree(tmp_path / "restored") == contents

        url = command("history")[-1].replace("$ARTIFACT_STORE_SERVER", served)
        assert httpx.get(url).json()["versions"] == {"run-2024-05-01": digest}
    finally:
        os.chdir(cwd)
