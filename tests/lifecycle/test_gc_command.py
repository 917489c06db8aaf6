"""``artifact-store gc``: the command on a data directory, and the lease it respects."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.cli.gc import parse_duration
from registry.config import Settings
from registry.service import blobs as blob_service
from registry.service.registry import open_registry
from tests.http._oci import Blob, random_blob


def test_parse_duration() -> None:
    assert parse_duration("90") == dt.timedelta(seconds=90)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("0s") == dt.timedelta(0)


def _garbage(data_dir: Path) -> Blob:
    layer = random_blob(512)

    async def make() -> None:
        async with open_registry(Settings(data_dir=str(data_dir))) as registry:

            async def body() -> AsyncIterator[bytes]:
                yield layer.data

            await blob_service.push_monolithic(
                registry, "gc/cli", layer.digest, body(), str(layer.size), actor="test"
            )
            await registry.writes.unlink_blob("gc/cli", layer.digest, actor="test")

    anyio.run(make)
    return layer


def test_the_gc_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    layer = _garbage(data)
    runner = CliRunner()
    args = ["gc", "--data-dir", str(data), "--grace", "0"]
    dry = runner.invoke(cli_app, [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert '"blobs_deleted": 1' in dry.stdout
    assert list((data / "blobs" / "blobs" / "sha256").rglob("data"))

    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "1 blobs deleted" in result.stdout
    assert f"{layer.size} B" in result.stdout
    assert not list((data / "blobs" / "blobs" / "sha256").rglob("data"))


def test_the_gc_command_when_another_collector_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _garbage(data)
    fd = os.open(data / "meta.db.gc-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = CliRunner().invoke(cli_app, ["gc", "--data-dir", str(data), "--grace", "0"])
    finally:
        os.close(fd)
    assert result.exit_code == 3
    assert "another garbage collection is running" in result.output
