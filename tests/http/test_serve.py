"""``artifact-store serve`` and ``admin`` as an operator runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conformance import mismatches, run_checks
from oci.digest import Digest
from tests.http._oci import Blob, push_blob, push_image
from tests.http._serve import free_port, run_cli, serving


def test_serves_health_and_v2(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(
        ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")], url, tmp_path
    ):
        health = httpx.get(f"{url}/health")
        assert health.status_code == 200
        assert health.headers["content-type"].startswith("application/json")
        assert health.json()["status"] == "ok"
        base = httpx.get(f"{url}/v2/")
        assert base.status_code == 200
        assert base.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert (tmp_path / "d" / "meta.db").exists()


def test_config_file_then_environment_then_flags(tmp_path: Path) -> None:
    toml_port, env_port = free_port(), free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'listen = "127.0.0.1:{toml_port}"\n'
        f'data-dir = "{tmp_path / "from-toml"}"\n'
        f'storage_url = "{tmp_path / "toml-blobs"}"\n'
    )
    env = {
        "ARTIFACT_STORE_LISTEN": f"127.0.0.1:{env_port}",
        "ARTIFACT_STORE_DATA_DIR": str(tmp_path / "from-env"),
    }
    url = f"http://127.0.0.1:{env_port}"
    args = ["--config", str(config), "--data-dir", str(tmp_path / "from-flag")]
    with serving(args, url, tmp_path, env):
        # the environment's listen beats the file's
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{toml_port}/v2/", timeout=1)
        response = httpx.post(
            f"{url}/v2/a/blobs/uploads/", params={"digest": str(Blob(b"x").digest)}, content=b"x"
        )
        assert response.status_code == 201
    # the flag's data dir beats the environment's and the file's
    assert (tmp_path / "from-flag" / "meta.db").exists()
    assert not (tmp_path / "from-env").exists()
    assert not (tmp_path / "from-toml").exists()
    # a setting only the file names is used
    assert any(p.is_file() for p in (tmp_path / "toml-blobs").rglob("*"))


def test_config_named_by_environment(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'listen = "127.0.0.1:{port}"\ndata_dir = "{tmp_path / "d"}"\n')
    url = f"http://127.0.0.1:{port}"
    with serving([], url, tmp_path, {"ARTIFACT_STORE_CONFIG": str(config)}):
        assert httpx.get(f"{url}/v2/").status_code == 200


def _bad_configs(tmp_path: Path) -> list[tuple[list[str], dict[str, str]]]:
    # Not a permission test: these tests may run as root, who may write anywhere.
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('listen = "127.0.0.1:5000\n')
    unknown_key = tmp_path / "unknown.toml"
    unknown_key.write_text('colour = "blue"\n')
    data = ["--data-dir", str(tmp_path / "data")]
    return [
        (["--data-dir", str(a_file / "sub")], {}),
        (["--data-dir", "/proc/no-such-dir"], {}),
        ([*data, "--database-url", "postgresql://nobody@127.0.0.1:1/x"], {}),
        ([*data, "--database-url", "mysql://x/y"], {}),
        ([*data, "--database-url", "not a url"], {}),
        ([*data, "--listen", "no-port"], {}),
        ([*data, "--listen", "127.0.0.1:99999"], {}),
        ([*data, "--listen", "127.0.0.1:abc"], {}),
        ([*data, "--storage-url", "ftp://example.com/x"], {}),
        ([*data, "--storage-url", "s3://"], {}),
        ([*data, "--config", str(bad_toml)], {}),
        ([*data, "--config", str(unknown_key)], {}),
        ([*data, "--config", str(tmp_path / "missing.toml")], {}),
        (data, {"ARTIFACT_STORE_UPLOAD_IDLE_SECONDS": "soon"}),
        ([*data, "--server", "uvicorn"], {}),
        ([*data, "--upload-cache", "sometimes"], {}),
        ([*data, "--workers", "0"], {}),
        ([*data, "--workers", "2", "--database-url", "not a url"], {}),
        ([*data, "--workers", "2", "--storage-url", "memory://"], {}),
    ]


def test_bad_configuration_fails_fast_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    wrong = []
    for args, env in _bad_configs(tmp_path):
        if "--listen" not in args:
            args = [*args, "--listen", f"127.0.0.1:{port}"]
        started = time.monotonic()
        try:
            result = run_cli(["serve", *args], env, timeout=30)
        except subprocess.TimeoutExpired:
            wrong.append(f"{args} {env}: still running after 30s")
            continue
        elapsed = time.monotonic() - started
        lines = result.stderr.strip().splitlines()
        if (
            result.returncode == 0
            or elapsed > 10
            or len(lines) != 1
            or "Traceback" in result.stderr
            or not lines[0].startswith("artifact-store: error: ")
        ):
            wrong.append(f"{args} {env}: rc={result.returncode} {elapsed:.1f}s {result.stderr!r}")
    assert wrong == []


def test_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(
        ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "a")], url, tmp_path
    ):
        result = run_cli(
            ["serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "b")]
        )
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


async def _push_and_read(url: str) -> dict[str, bytes]:
    async with httpx.AsyncClient(base_url=url) as client:
        pushed = await push_image(client, "team/app", "v1")
        await push_blob(client, "team/other", Blob(b"other"))
        return await _read(client, str(pushed.digest))


async def _read(client: httpx.AsyncClient, digest: str) -> dict[str, bytes]:
    urls = [
        "/v2/_catalog",
        "/v2/team/app/tags/list",
        "/v2/team/app/manifests/v1",
        f"/v2/team/app/manifests/{digest}",
        f"/v2/team/app/blobs/{Blob(b'{}').digest}",
        f"/v2/team/other/blobs/{Blob(b'other').digest}",
    ]
    out = {}
    for path in urls:
        response = await client.get(path)
        assert response.status_code == 200, path
        out[path] = response.content
    layers = json.loads(out["/v2/team/app/manifests/v1"])["layers"]
    response = await client.get(f"/v2/team/app/blobs/{layers[0]['digest']}")
    out["layer"] = response.content
    return out


@pytest.mark.anyio
async def test_rebuild_views_keeps_what_is_served(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = str(tmp_path / "data")
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", data]
    with serving(args, url, tmp_path):
        before = await _push_and_read(url)
    result = run_cli(["admin", "rebuild-views", "--data-dir", data])
    assert result.returncode == 0, result.stderr
    assert "replayed" in result.stdout
    assert int(result.stdout.split()[1]) > 5
    with serving(args, url, tmp_path):
        async with httpx.AsyncClient(base_url=url) as client:
            digest = before["/v2/team/app/manifests/v1"]
            after = await _read(client, str(Digest.compute(digest)))
    assert after == before


@pytest.mark.anyio
@pytest.mark.parametrize("server", ["hypercorn", "granian"])
async def test_conformance_against_the_served_process(tmp_path: Path, server: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d"), "--server", server]
    with serving(args, url, tmp_path):
        # The server named answers (each names itself, e.g. "hypercorn-h11").
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/v2/")).headers["server"].startswith(server)
        results = await run_checks(url)
    assert len(results) > 30
    assert mismatches(results) == []


def test_a_push_resumes_after_the_server_is_killed_mid_chunk(tmp_path: Path) -> None:
    """SIGKILL while a PATCH streams in: bytes were staged but their offset never recorded.
    After a restart the client is told the staged size (416, then status) and finishes."""
    mib = 1 << 20
    data = os.urandom(16 * mib)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")]
    with serving(args, url, tmp_path) as process:
        location = httpx.post(f"{url}/v2/crash/app/blobs/uploads/").headers["Location"]
        done = httpx.patch(
            location, content=data[: 4 * mib], headers={"Content-Range": f"0-{4 * mib - 1}"}
        )
        assert done.status_code == 202
        staged = [
            p for p in (tmp_path / "d").rglob("*") if p.is_file() and p.stat().st_size == 4 * mib
        ]
        assert len(staged) == 1

        def half_a_chunk() -> Iterator[bytes]:
            yield data[4 * mib : 10 * mib]
            deadline = time.monotonic() + 30
            while staged[0].stat().st_size < 8 * mib:  # two of the six MiB reached the file
                assert time.monotonic() < deadline, "the chunk never reached the staged file"
                time.sleep(0.05)
            process.kill()  # no finally blocks, no flushes: as a power cut would leave the process
            process.wait()
            yield b""

        with pytest.raises(httpx.TransportError):
            httpx.patch(
                location,
                content=half_a_chunk(),
                headers={"Content-Range": f"{4 * mib}-{12 * mib - 1}"},
            )
    kept = staged[0].stat().st_size
    assert kept > 4 * mib

    with serving(args, url, tmp_path):
        assert httpx.get(location).headers["Range"] == f"0-{kept - 1}"  # the staged bytes
        retry = httpx.patch(  # a small chunk: the 416 comes before the body is read
            location,
            content=data[4 * mib : 5 * mib],
            headers={"Content-Range": f"{4 * mib}-{5 * mib - 1}"},
        )
        assert retry.status_code == 416
        assert retry.headers["Range"] == f"0-{kept - 1}"  # the staged bytes: resume from there
        assert httpx.get(location).headers["Range"] == f"0-{kept - 1}"
        rest = httpx.patch(
            location, content=data[kept:], headers={"Content-Range": f"{kept}-{16 * mib - 1}"}
        )
        assert rest.status_code == 202
        digest = Digest.compute(data)
        assert httpx.put(location, params={"digest": str(digest)}).status_code == 201
        assert httpx.get(f"{url}/v2/crash/app/blobs/{digest}").content == data


@pytest.mark.parametrize("server", ["hypercorn", "granian"])
def test_an_early_error_reaches_a_client_still_sending_its_body(
    tmp_path: Path, server: str
) -> None:
    """A 64 MiB PATCH to an unknown upload: the 404 is sent before the body is read. Python
    clients send the whole body before reading; they must still get the error, promptly."""
    body = os.urandom(64 << 20)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")]
    env = {"ARTIFACT_STORE_SERVER": server}
    with serving(args, url, tmp_path, env), httpx.Client(timeout=10) as client:
        response = client.patch(f"{url}/v2/a/b/blobs/uploads/unknown", content=body)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        # A request whose body was read keeps its connection.
        location = client.post(f"{url}/v2/a/b/blobs/uploads/").headers["Location"]
        chunk = client.patch(location, content=body[: 1 << 20])
        assert chunk.status_code == 202
        assert chunk.headers.get("connection", "keep-alive") != "close"
