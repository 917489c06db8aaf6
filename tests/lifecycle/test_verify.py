"""verify (scrub): corrupt, missing and orphaned blobs, dangling references, the repair policy.

On SQLite and PostgreSQL with the filesystem driver; the S3 driver (SeaweedFS)
for corruption, missing and orphaned bytes and their repair; and the CLI end
to end on a data directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner, Result

from bench.servers import artifact_store_command
from oci.digest import Digest
from registry.cli import app as cli_app
from registry.cli.verify import EXIT_CLEAN, EXIT_ERROR, EXIT_LEFT, EXIT_REPAIRED
from registry.config import Settings
from registry.lifecycle.verify import VerifyReport, verify
from registry.meta import MetadataStore
from registry.meta.events import BlobDeleted
from registry.service import blobs as blob_service
from registry.service import manifests as manifest_service
from registry.service.registry import Registry
from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound
from storage.filesystem import FsBlobStore
from storage.s3 import S3BlobStore
from tests.meta._content import OCI_MANIFEST, image
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["make_url"]  # fixtures used here

pytestmark = pytest.mark.anyio

REPO = "team/app"
ACTOR = "test"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def push_blob(registry: Registry, repo: str, data: bytes) -> BlobInfo:
    return await blob_service.push_monolithic(
        registry, repo, Digest.compute(data), _body(data), str(len(data)), actor=ACTOR
    )


async def push_image(
    registry: Registry, repo: str, tag: str, seed: str
) -> tuple[str, list[BlobInfo]]:
    """An image of a config and two layers; returns its digest and its blobs."""
    datas = [f"{seed} config".encode(), f"{seed} layer one".encode() * 50, f"{seed} two".encode()]
    infos = [await push_blob(registry, repo, data) for data in datas]
    pushed = image(infos[0], infos[1:])
    stored = await manifest_service.put_manifest(
        registry, repo, tag, pushed.body, OCI_MANIFEST, [], actor=ACTOR
    )
    return str(stored.digest), infos


async def store_stray(store: BlobStore, data: bytes) -> BlobInfo:
    """Bytes committed to the storage with no metadata: an orphan."""
    writer = await store.upload(f"stray-{Digest.compute(data).hex[:12]}")
    await writer.write(data)
    return await writer.commit()


async def flip_byte(store: BlobStore, info: BlobInfo) -> None:
    """Change one stored byte behind the driver's back, as disk rot would."""
    if isinstance(store, FsBlobStore):
        data = store.root / "blobs" / "sha256" / info.sha256.hex[:2] / info.sha256.hex / "data"
        with data.open("r+b") as file:
            first = file.read(1)
            file.seek(0)
            file.write(bytes([first[0] ^ 1]))
        return
    assert isinstance(store, S3BlobStore)
    content = bytearray()
    async for chunk in await store.read(info.sha256):
        content += chunk
    content[0] ^= 1
    key = store._key("blobs", "sha256", info.sha256.hex)
    await store._put(key, bytes(content), {"x-amz-meta-blake3": str(info.blake3)})


async def event_count(registry: Registry) -> int:
    return len(await registry.meta.events(0, 100_000))


def kinds(report: VerifyReport) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.kind, []).append(finding.digest)
    return found


@pytest.fixture
async def registry(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[Registry]:
    meta = await MetadataStore.open(make_url())
    try:
        yield Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    finally:
        await meta.close()


@pytest.fixture
async def s3_registry(
    make_url: UrlFactory, s3_store: S3BlobStore, tmp_path: Path
) -> AsyncIterator[Registry]:
    meta = await MetadataStore.open(make_url())
    try:
        yield Registry(meta, s3_store, Settings(data_dir=str(tmp_path)))
    finally:
        await meta.close()
        async for info in s3_store.list():
            await s3_store.delete(info.sha256)


async def test_a_clean_store_reports_nothing(registry: Registry) -> None:
    await push_image(registry, REPO, "1", "a")
    _, infos = await push_image(registry, "other/repo", "1", "b")
    ticks: list[int] = []
    report = await verify(registry, progress=lambda p: ticks.append(p.bytes))
    assert report.ok, report.findings
    assert report.blobs_recorded == report.blobs_stored == report.blobs_hashed == 6
    assert report.bytes_hashed == ticks[-1] > sum(i.size for i in infos)
    assert len(ticks) == 6


async def test_a_flipped_byte_is_corrupt_and_nothing_changes(registry: Registry) -> None:
    manifest, infos = await push_image(registry, REPO, "1", "a")
    rotten = infos[1]
    await flip_byte(registry.blobs, rotten)
    events = await event_count(registry)

    report = await verify(registry)
    assert kinds(report) == {"corrupt": [str(rotten.sha256)]}
    assert "not to their name" in report.findings[0].detail
    assert not report.repaired
    assert report.findings[0].action is None
    assert await registry.blobs.stat(rotten.sha256) == rotten  # still there, untouched
    assert await event_count(registry) == events
    # Sizes and names alone cannot see a flipped byte.
    assert (await verify(registry, rehash=False)).ok


async def test_deleted_bytes_are_missing_with_their_manifests(registry: Registry) -> None:
    manifest, infos = await push_image(registry, REPO, "1", "a")
    await registry.blobs.delete(infos[2].sha256)
    report = await verify(registry)
    assert kinds(report) == {"missing": [str(infos[2].sha256)]}
    assert report.findings[0].referenced_by == [f"{REPO}@{manifest}"]
    assert report.blobs_stored == 2
    assert report.blobs_recorded == 3


async def test_a_stray_object_is_orphaned(registry: Registry) -> None:
    await push_image(registry, REPO, "1", "a")
    stray = await store_stray(registry.blobs, b"nobody recorded me")
    report = await verify(registry)
    assert kinds(report) == {"orphaned": [str(stray.sha256)]}
    finding = report.findings[0]
    assert finding.size == stray.size
    assert finding.referenced_by == []
    assert finding.age_seconds is not None
    assert 0 <= finding.age_seconds < 60


async def test_a_truncated_blob_is_a_size_mismatch_even_without_rehash(registry: Registry) -> None:
    assert isinstance(registry.blobs, FsBlobStore)
    _, infos = await push_image(registry, REPO, "1", "a")
    hexdigest = infos[1].sha256.hex
    data = registry.blobs.root / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
    os.truncate(data, infos[1].size - 10)
    quick = await verify(registry, rehash=False)
    assert kinds(quick) == {"size_mismatch": [str(infos[1].sha256)]}
    assert quick.blobs_hashed == 0
    full = await verify(registry)
    assert kinds(full) == {"corrupt": [str(infos[1].sha256)]}  # one finding per blob


async def test_references_to_blobs_a_repository_lost_are_dangling(registry: Registry) -> None:
    manifest, infos = await push_image(registry, REPO, "1", "a")
    layer = infos[2]
    await registry.writes.unlink_blob(REPO, layer.sha256, actor=ACTOR)  # the v2 DELETE of a blob
    report = await verify(registry)
    assert kinds(report) == {"dangling": [str(layer.sha256)]}
    finding = report.findings[0]
    assert (finding.repository, finding.manifest) == (REPO, manifest)
    assert "no longer holds" in finding.detail

    async with registry.meta.transaction() as tx:  # the row goes too: the bytes are orphaned
        await tx.append_event(BlobDeleted(layer.sha256, layer.size), ACTOR)
    report = await verify(registry)
    assert kinds(report) == {"dangling": [str(layer.sha256)], "orphaned": [str(layer.sha256)]}
    assert report.of("orphaned")[0].referenced_by == [f"{REPO}@{manifest}"]
    assert "does not have" in report.of("dangling")[0].detail


async def test_repair_never_deletes_referenced_intact_bytes_but_records_them(
    registry: Registry,
) -> None:
    manifest, infos = await push_image(registry, REPO, "1", "a")
    layer = infos[2]
    await registry.writes.unlink_blob(REPO, layer.sha256, actor=ACTOR)
    async with registry.meta.transaction() as tx:
        await tx.append_event(BlobDeleted(layer.sha256, layer.size), ACTOR)

    report = await verify(registry, repair=True, grace=dt.timedelta(0))
    orphan = report.of("orphaned")[0]
    assert orphan.repaired
    assert orphan.action is not None
    assert "re-recorded in" in orphan.action
    assert all(f.repaired for f in report.findings)
    assert await registry.blobs.stat(layer.sha256) == layer
    assert await registry.meta.get_blob(REPO, layer.sha256) is not None
    assert (await verify(registry)).ok


async def test_repair_keeps_young_orphans_and_deletes_old_ones(registry: Registry) -> None:
    stray = await store_stray(registry.blobs, b"left behind by a crash")
    kept = await verify(registry, repair=True)  # default grace: one hour
    assert not kept.of("orphaned")[0].repaired
    assert "grace window" in (kept.of("orphaned")[0].action or "")
    assert await registry.blobs.stat(stray.sha256) == stray

    swept = await verify(registry, repair=True, grace=dt.timedelta(0))
    assert swept.of("orphaned")[0].repaired
    with pytest.raises(BlobNotFound):
        await registry.blobs.stat(stray.sha256)
    last = (await registry.meta.events(0, 1000))[-1]
    assert (last.type, last.actor) == ("blob.deleted", "verify")
    assert (await verify(registry)).ok


async def test_repair_quarantines_corrupt_bytes_and_a_new_push_heals(
    registry: Registry, tmp_path: Path
) -> None:
    manifest, infos = await push_image(registry, REPO, "1", "a")
    rotten = infos[1]
    await flip_byte(registry.blobs, rotten)

    report = await verify(registry, repair=True)
    corrupt = report.of("corrupt")[0]
    assert corrupt.repaired
    assert report.quarantine == str(tmp_path / "quarantine")
    moved = sorted((tmp_path / "quarantine").iterdir())
    assert [p.suffix for p in moved] == [".data", ".json"]
    original = b"a layer one" * 50
    assert moved[0].read_bytes() != original
    assert len(moved[0].read_bytes()) == len(original)
    sidecar = json.loads(moved[1].read_text())
    assert sidecar["sha256"] == str(rotten.sha256)
    assert sidecar["actual_sha256"] != str(rotten.sha256)
    with pytest.raises(BlobNotFound):
        await registry.blobs.stat(rotten.sha256)
    # Still recorded and referenced: it is missing now, and only a new upload restores it.
    missing = report.of("missing")[0]
    assert missing.digest == str(rotten.sha256)
    assert not missing.repaired
    assert missing.referenced_by == [f"{REPO}@{manifest}"]

    await push_blob(registry, REPO, original)
    assert (await verify(registry)).ok


async def test_repair_forgets_a_missing_blob_no_manifest_references(registry: Registry) -> None:
    lost = await push_blob(registry, REPO, b"uploaded, never referenced")
    await registry.blobs.delete(lost.sha256)
    report = await verify(registry, repair=True)
    assert report.of("missing")[0].repaired
    assert await registry.meta.get_blob(REPO, lost.sha256) is None  # HEAD now says 404
    assert [e.type for e in (await registry.meta.events(0, 1000))[-2:]] == [
        "blob.unlinked",
        "blob.deleted",
    ]
    assert (await verify(registry)).ok


async def test_repair_leaves_held_missing_blobs(registry: Registry) -> None:
    lost = await push_blob(registry, REPO, b"held evidence")
    await registry.writes.place_hold(REPO, None, "litigation", actor=ACTOR)
    await registry.blobs.delete(lost.sha256)
    report = await verify(registry, repair=True)
    finding = report.of("missing")[0]
    assert not finding.repaired
    assert "legal hold" in (finding.action or "")
    assert await registry.meta.get_blob(REPO, lost.sha256) is not None


async def test_on_s3_corrupt_missing_and_orphaned_blobs_and_their_repair(
    s3_registry: Registry, tmp_path: Path
) -> None:
    manifest, infos = await push_image(s3_registry, REPO, "1", "s3")
    lonely = await push_blob(s3_registry, REPO, b"unreferenced")
    stray = await store_stray(s3_registry.blobs, b"stray object")
    await flip_byte(s3_registry.blobs, infos[1])
    await s3_registry.blobs.delete(lonely.sha256)

    report = await verify(s3_registry)
    assert kinds(report) == {
        "corrupt": [str(infos[1].sha256)],
        "missing": [str(lonely.sha256)],
        "orphaned": [str(stray.sha256)],
    }
    assert report.blobs_hashed == 4  # three of the image, the stray

    repaired = await verify(s3_registry, repair=True, grace=dt.timedelta(0))
    assert all(f.repaired for f in repaired.findings if f.kind != "missing")
    assert [p.suffix for p in sorted((tmp_path / "quarantine").iterdir())] == [".data", ".json"]
    for gone in (infos[1], stray):
        with pytest.raises(BlobNotFound):
            await s3_registry.blobs.stat(gone.sha256)
    after = await verify(s3_registry)
    assert kinds(after) == {"missing": [str(infos[1].sha256)]}  # referenced: push it again


# -- the CLI, end to end on a data directory ---------------------------------------------


def _seed(data_dir: Path) -> tuple[FsBlobStore, list[BlobInfo]]:
    settings = Settings(data_dir=str(data_dir))

    async def seed() -> list[BlobInfo]:
        meta = await MetadataStore.open(settings.resolved_database_url)
        registry = Registry(meta, FsBlobStore(settings.resolved_storage_url), settings)
        try:
            return (await push_image(registry, REPO, "1", "cli"))[1]
        finally:
            await meta.close()

    return FsBlobStore(settings.resolved_storage_url), anyio.run(seed)


def verify_cli(data_dir: Path, *args: str) -> Result:
    """In-process, to spare the suite a process start-up per call; see the test below for one."""
    return CliRunner().invoke(cli_app, ["verify", "--data-dir", str(data_dir), *args])


def test_cli_exit_codes_json_and_repair(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store, infos = _seed(data_dir)

    clean = subprocess.run(
        [*artifact_store_command(), "verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert clean.returncode == EXIT_CLEAN, clean.stderr
    assert "checked 3 stored blobs against 3 recorded" in clean.stdout

    stray = anyio.run(store_stray, store, b"a crashed upload's bytes")
    found = verify_cli(data_dir, "--json")
    assert found.exit_code == EXIT_LEFT, found.output
    document = json.loads(found.stdout)
    assert document["counts"]["orphaned"] == 1
    assert not document["ok"]
    assert document["findings"][0]["digest"] == str(stray.sha256)

    fixed = verify_cli(data_dir, "--repair", "--grace", "0s")
    assert fixed.exit_code == EXIT_REPAIRED, fixed.output
    assert "repaired 1, left 0" in fixed.stdout
    assert verify_cli(data_dir, "--no-rehash").exit_code == EXIT_CLEAN

    anyio.run(flip_byte, store, infos[0])
    corrupt = verify_cli(data_dir)
    assert corrupt.exit_code == EXIT_LEFT
    assert f"corrupt       {infos[0].sha256}" in corrupt.stdout

    broken = verify_cli(data_dir, "--database-url", "mysql://nowhere/db")
    assert broken.exit_code == EXIT_ERROR
    assert "unsupported metadata database URL" in broken.stderr
