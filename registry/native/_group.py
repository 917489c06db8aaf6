"""Group commit: the blobs of concurrent one-request uploads share write transactions.

Theory of operation. Metadata writes are serial (one database-wide lock,
``registry/meta/log.py``), so when a client sends many small files at
once the lock, not the bytes, sets the pace: each commit waits for the lock,
begins, appends, commits. Here a request that has stored its bytes queues
its commit and waits for the answer; one task per metadata store takes
everything queued (up to ``BATCH``) and records it with
``Writes.commit_blobs``: one transaction, one event per blob. The
first commit is not delayed (the queue is taken as soon as the task runs),
and while one transaction is in flight the next batch gathers, so the batch
size follows the concurrency by itself.

The task is not the request's: a client that disconnects while waiting
leaves its blob to be recorded anyway (its bytes are stored; recording
them is as harmless as a completed upload), and the other blobs of its
batch are never cancelled with it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from registry.service.writes import Writes
from storage.base import BlobInfo

__all__ = ["commit"]

BATCH = 64
Present = Callable[[], Awaitable[bool]]


@dataclass
class _Pending:
    repo: str
    blob: BlobInfo
    actor: str
    present: Present
    done: asyncio.Future[None]


@dataclass
class _Committer:
    # No reference to the writes: they are the key of ``_committers``, a weak one.
    queue: list[_Pending] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def run(self, writes: Writes) -> None:
        while self.queue:
            batch, self.queue = self.queue[:BATCH], self.queue[BATCH:]
            items = [(p.repo, p.blob, p.actor, p.present) for p in batch]
            try:
                results = await writes.commit_blobs(items)
            except BaseException as exc:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for pending, error in zip(batch, results, strict=True):
                if pending.done.done():
                    continue
                if error is None:
                    pending.done.set_result(None)
                else:
                    pending.done.set_exception(error)


_committers: weakref.WeakKeyDictionary[Writes, _Committer] = weakref.WeakKeyDictionary()


async def commit(writes: Writes, repo: str, blob: BlobInfo, actor: str, present: Present) -> None:
    """``writes.commit_blob(repo, blob, actor=actor, present=present)``, grouped with its peers."""
    committer = _committers.get(writes)
    if committer is None:
        committer = _committers[writes] = _Committer()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # A waiter that went away (client disconnect) must not leave an unretrieved error.
    done.add_done_callback(lambda f: f.cancelled() or f.exception())
    committer.queue.append(_Pending(repo, blob, actor, present, done))
    if committer.task is None or committer.task.done():
        committer.task = asyncio.create_task(committer.run(writes), name="blob-group-commit")
    await asyncio.shield(done)
