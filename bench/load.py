"""Closed-loop request-rate measurement: N keep-alive connections, each sending
its next request as soon as the previous answer is read, for a fixed time.

Two generators:
- ``wrk`` (C, multi-threaded) when installed: the load generator should not be
  the bottleneck, and on a two-core machine a Python one can be. wrk cannot
  measure HEAD: its response parser then waits for a body that never comes.
- ``socket``: an asyncio client over raw sockets with pre-encoded requests and
  a minimal response parser, split over worker processes. It avoids the
  per-request cost of a full HTTP client library, so a Python server is not
  flattered by a slow client; it handles HEAD.

Any status other than 200 fails the measurement: a fast 404 is not a result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["LoadError", "LoadResult", "socket_rps", "wrk_available", "wrk_rps"]


class LoadError(RuntimeError):
    """The load run saw errors or non-200 answers."""


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    requests: int
    tool: str


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_WRK_SCRIPT = """\
wrk.method = "{method}"
{headers}
"""


def wrk_rps(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    connections: int = 64,
    duration: float = 10.0,
    threads: int = 2,
) -> LoadResult:
    if method == "HEAD":
        raise LoadError("wrk cannot measure HEAD (it waits for a body)")
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT.format(method=method, headers=lines))
    try:
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            # A slow answer is part of the figure, not an error to drop.
            "--timeout",
            "60s",
            "-s",
            script.name,
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    for bad in ("Non-2xx or 3xx responses", "Socket errors"):
        if bad in out:
            raise LoadError(f"wrk reported errors:\n{out}")
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rate is None or int(total.group(1)) == 0:
        raise LoadError(f"wrk gave no rate:\n{out}")
    return LoadResult(float(rate.group(1)), int(total.group(1)), "wrk")


def _encode_request(url: str, method: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _connection(host: str, port: int, request: bytes, has_body: bool, deadline: float) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            if status != b"200":
                raise LoadError(f"answer {head[:200]!r}")
            lowered = head.lower()
            if has_body:
                match = re.search(rb"\r\ncontent-length:\s*(\d+)", lowered)
                if match is None:
                    raise LoadError("answer without Content-Length")
                await reader.readexactly(int(match.group(1)))
            done += 1
    finally:
        writer.close()
    return done


async def _drive(
    url: str, method: str, headers: dict[str, str], connections: int, duration: float
) -> int:
    host, port, request = _encode_request(url, method, headers)
    deadline = time.monotonic() + duration
    counts = await asyncio.gather(
        *(_connection(host, port, request, method != "HEAD", deadline) for _ in range(connections))
    )
    return sum(counts)


def _worker(
    args: tuple[str, str, dict[str, str], int, float],
) -> int:
    return asyncio.run(_drive(*args))


def socket_rps(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    connections: int = 64,
    duration: float = 10.0,
    processes: int = 2,
) -> LoadResult:
    """Spread ``connections`` over ``processes`` asyncio workers; count 200s."""
    processes = max(1, min(processes, connections))
    share = [connections // processes + (i < connections % processes) for i in range(processes)]
    jobs = [(url, method, dict(headers or {}), n, duration) for n in share]
    if processes == 1:
        total = _worker(jobs[0])
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes) as pool:
            total = sum(pool.map(_worker, jobs))
    if total == 0:
        raise LoadError("no request completed")
    # Every connection stops at the same deadline, so the window is the duration.
    return LoadResult(total / duration, total, f"socket x{processes}")
