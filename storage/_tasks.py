"""Waiting for worker threads and tasks that must finish even when their caller does not.

Shared by the hashing (``storage.hashing``) and the drivers' writers, which
keep a piece of work in flight while the caller goes on: the thread doing it
cannot be interrupted, so whoever drops the work still waits for it before
the file or buffer it uses goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import anyio.to_thread

__all__ = ["concurrently", "finish_quietly"]


async def concurrently(*calls: Callable[[], object]) -> None:
    """Run blocking ``calls`` in worker threads at the same time; re-raise the first error.

    Errors are collected rather than left to the task group, which would wrap
    them in an ExceptionGroup that callers converting OSError cannot catch.
    Cancellation waits for the threads (they cannot be interrupted), so the
    caller knows no thread is still touching its state afterwards.
    """
    errors: list[Exception] = []

    async def run(call: Callable[[], object]) -> None:
        try:
            await anyio.to_thread.run_sync(call)
        except Exception as exc:  # re-raised below, unwrapped
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call)
    if errors:
        raise errors[0]


async def finish_quietly(task: asyncio.Future[None] | None) -> None:
    """Wait for ``task`` even when the caller is cancelled, and drop its error.

    For a driver's piece in flight when its writer is being discarded: the
    task's thread still uses the writer's file or buffer, so it must be over
    before they go, and its error no longer matters.
    """
    if task is None:
        return
    with anyio.CancelScope(shield=True):
        await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as lost
