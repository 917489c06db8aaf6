"""A client that hangs up mid-body: one INFO line in the server's log, and no bytes kept.

A PATCH whose body ends short of its ``Content-Length`` is not a chunk: the
upload's offset stays where it was, so the client (or its retry) resumes
from there. Real processes on a real port: the cut connection is the
server's to notice.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.http._serve import free_port, serving


@contextmanager
def _serving(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, int, Path]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")]
    with serving(args, url, tmp_path, env):
        yield url, port, tmp_path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    with _serving(tmp_path) as served:
        yield served


@pytest.fixture
def authed_server(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    with _serving(tmp_path, {"ARTIFACT_STORE_AUTH": "1"}) as served:
        yield served


def _hang_up(port: int, head: str, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head.encode() + sent)
        time.sleep(0.3)  # the server is inside the body when the client goes


def _log(workdir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(workdir.glob("serve-*.log")))


def _settled(workdir: Path, needle: str) -> str:
    deadline = time.monotonic() + 5
    while needle not in (text := _log(workdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return text


def test_a_truncated_patch_keeps_no_bytes_and_logs_one_info_line(
    server: tuple[str, int, Path],
) -> None:
    url, port, workdir = server
    started = httpx.post(f"{url}/v2/app/blobs/uploads/")
    location = started.headers["Location"]
    assert httpx.patch(location, content=b"0123456789").status_code == 202
    path = httpx.URL(location).raw_path.decode()
    _hang_up(
        port,
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\nContent-Range: 10-109\r\n"
        "Content-Length: 100\r\n\r\n",
        b"abcde",
    )
    text = _settled(workdir, "disconnected")
    status = httpx.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9"
    assert "Traceback" not in text
    assert "ERROR" not in text
    lines = [line for line in text.splitlines() if "disconnected" in line]
    assert len(lines) == 1, text
    assert "INFO" in lines[0]


def test_a_truncated_token_request_logs_one_info_line(
    authed_server: tuple[str, int, Path],
) -> None:
    _url, port, workdir = authed_server
    _hang_up(
        port,
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        b"grant",
    )
    text = _settled(workdir, "disconnected")
    assert "Traceback" not in text
    assert "ERROR" not in text
    lines = [line for line in text.splitlines() if "disconnected" in line]
    assert len(lines) == 1, text
    assert "INFO" in lines[0]
