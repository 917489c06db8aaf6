"""The benchmark runs end to end at tiny sizes against artifact-store on both
ASGI servers and with ``--upload-cache drop``, so its code cannot rot between
the runs that record figures in docs/PERFORMANCE.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.clients, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_measures_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The socket load generator: it is the one that runs everywhere (wrk may be absent).
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick",
         "--servers", "artifact-store,artifact-store+granian,artifact-store+drop",
         "--load", "socket", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "peak RSS" in done.stdout
    result = json.loads(out.read_text())
    keys = {m["key"] for m in result["metrics"]}
    assert keys == {
        "push_monolithic",
        "push_chunked",
        "pull",
        "manifest_get",
        "blob_head",
        "tags_20",
        "tags_50",
        "rss_stream",
        "peak_rss",
    }
    for metric in result["metrics"]:
        for server in ("artifact-store", "artifact-store+granian", "artifact-store+drop"):
            # RSS may not rise at all while a tiny blob streams through.
            assert metric["medians"][server] > 0 or metric["key"] == "rss_stream", metric
    assert result["tools"] == {"manifest_get": "socket x2", "blob_head": "socket x2"}
