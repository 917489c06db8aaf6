"""docs/embedding.md's programs, run as written, so the document cannot drift from the code."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "embedding.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)


def run(program: str, cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", program, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_example_program_runs(tmp_path: Path) -> None:
    example = python_blocks()[0]
    out = run(example, tmp_path, str(tmp_path / "data")).splitlines()
    assert out[0].startswith("published sha256:")
    assert out[1] == "README.md: # tool"
    # Two files and the native manifest's config blob, then the manifest.
    assert [line.split()[1:] for line in out[2:]] == [
        ["build-42", "blob.committed", "team/tool"],
        ["build-42", "blob.committed", "team/tool"],
        ["build-42", "blob.committed", "team/tool"],
        ["build-42", "manifest.put", "team/tool"],
    ]
    assert (tmp_path / "data" / "meta.db").is_file()


DRIVE_THE_MOUNT = textwrap.dedent(
    """
    import anyio
    import httpx


    async def drive() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                print((await client.get("/")).text)
                opened = await client.post("/registry/v2/team/tool/blobs/uploads/")
                print(opened.status_code, opened.headers["location"].split("/uploads/")[0])
                status = await client.get(opened.headers["location"])
                print(status.status_code)


    anyio.run(drive)
    """
)


def test_the_mounting_example_serves_under_its_prefix(tmp_path: Path) -> None:
    mounting = python_blocks()[1]
    out = run(mounting + DRIVE_THE_MOUNT, tmp_path).splitlines()
    assert out == [
        "the parent application",
        "202 http://h/registry/v2/team/tool/blobs",
        "204",
    ]
    assert (tmp_path / "data" / "meta.db").is_file()  # the lifespan opened the registry
