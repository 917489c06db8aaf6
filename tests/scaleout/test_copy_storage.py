"""``artifact-store admin copy-storage``: every blob to another backend, verified, resumable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import httpx
import pytest

from bench.servers import artifact_store, artifact_store_command
from oci.digest import Digest
from registry.admin import CopyOutcome, copy_blobs, plan_copy
from registry.admin.copy import upload_id_for
from storage.base import BlobInfo, BlobStore
from storage.filesystem import FsBlobStore
from storage.s3 import S3BlobStore

KiB = 1024
_SUMMARY = re.compile(r"copied (\d+) blobs \((\d+) bytes\), skipped (\d+) already present")


async def _contents(store: BlobStore) -> set[BlobInfo]:
    return {info async for info in store.list()}


async def _push(client: httpx.AsyncClient, repo: str, count: int) -> None:
    for _ in range(count):
        data = os.urandom(300 * KiB)
        response = await client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": str(Digest.compute(data))}, content=data
        )
        assert response.status_code == 201, response.text


@pytest.mark.anyio
async def test_copy_while_the_registry_serves_then_catch_up(
    tmp_path: Path, s3_store_url: str
) -> None:
    """Filesystem -> S3 under a live server; the second run (the CLI) copies only what is new."""
    source = FsBlobStore(str(tmp_path / "data" / "blobs"))
    dest = S3BlobStore.from_url(s3_store_url)
    with artifact_store(tmp_path / "data") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            await _push(client, "copy/live", 6)
            plan = await plan_copy(source)
            async with anyio.create_task_group() as tasks:
                # Pushes keep succeeding while the copy runs; they land after its listing.
                tasks.start_soon(_push, client, "copy/live", 6)
                first = await copy_blobs(source, dest, plan, jobs=2)
            assert (first.copied, first.skipped, first.failed) == (6, 0, [])
            assert len(await _contents(source)) == 12
            command = [
                *artifact_store_command(), "admin", "copy-storage",
                "--from", str(tmp_path / "data" / "blobs"), "--to", s3_store_url,
            ]  # fmt: skip
            second = await anyio.run_process(command, check=False)
    assert second.returncode == 0, second.stderr.decode()
    match = _SUMMARY.search(second.stdout.decode())
    assert match is not None, second.stdout.decode()
    assert (int(match.group(1)), int(match.group(3))) == (6, 6)  # copied, skipped
    assert await _contents(dest) == await _contents(source)


@pytest.mark.anyio
async def test_copy_back_resumes_a_staged_prefix_and_verifies_it(
    tmp_path: Path, s3_store: S3BlobStore
) -> None:
    """S3 -> filesystem. An interrupted copy's staged bytes are resumed, not trusted:
    a wrong prefix fails the blob's digest check, and the rerun then copies it whole."""
    blobs = [os.urandom(n) for n in (0, 1, 200 * KiB, 9 * 1024 * KiB)]
    for data in blobs:
        writer = await s3_store.upload(f"seed-{len(data)}")
        await writer.write(data)
        await writer.commit(Digest.compute(data))
    dest = FsBlobStore(str(tmp_path / "fs"))
    big = Digest.compute(blobs[-1])
    staged = await dest.upload(upload_id_for(big))
    await staged.write(os.urandom(1024 * KiB))  # not the blob's first MiB
    await staged.close()

    outcomes: dict[Digest, CopyOutcome] = {}
    plan = await plan_copy(s3_store)
    report = await copy_blobs(
        s3_store, dest, plan, jobs=2, done=lambda info, o: outcomes.__setitem__(info.sha256, o)
    )
    assert outcomes[big] is CopyOutcome.FAILED  # resumed after the bad prefix, caught
    assert [d for d, _ in report.failed] == [big]
    assert report.copied == 3

    again = await copy_blobs(s3_store, dest, await plan_copy(s3_store))
    assert (again.copied, again.skipped, again.failed) == (1, 3, [])
    assert await _contents(dest) == await _contents(s3_store)
    assert [u async for u in dest.list_uploads()] == []
    for data in blobs:
        assert b"".join([c async for c in await dest.read(Digest.compute(data))]) == data
        await s3_store.delete(Digest.compute(data))
