"""A hypothesis state machine that drives a BlobStore beside a dict model.

The model is what the contract promises, in a few dicts: committed blobs by
sha256, the sha512 names a commit verified, and the bytes each upload session
has accepted. Rules open, write, close, abort and commit sessions (through the
store or its ``peer``, so resuming in "another process" is exercised), delete,
read, stat and discard; after every step the store's listings must equal the
model's.

Hypothesis drives the machine synchronously, so ``run_model`` is called in a
worker thread (``anyio.to_thread.run_sync``) and each store call is sent back
to the test's event loop with ``anyio.from_thread.run``: the store lives on the
loop it was made on, as it does in the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio.from_thread
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from oci.digest import Digest
from storage.base import BlobStore, BlobWriter
from storage.errors import BlobNotFound, DigestMismatch

__all__ = ["BlobStoreModel", "run_model"]

_T = TypeVar("_T")

UPLOAD_IDS = ("alpha", "beta", "gamma")
CHUNKS = st.one_of(st.binary(max_size=48), st.sampled_from([b"", b"dup", b"x" * 70_000]))


def _call(fn: Callable[[], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        return await fn()

    return anyio.from_thread.run(run)


async def _collect(items: AsyncIterator[_T]) -> list[_T]:
    return [item async for item in items]


class BlobStoreModel(RuleBasedStateMachine):
    def __init__(self, store: BlobStore, peer: BlobStore) -> None:
        super().__init__()
        self.stores = (store, peer)
        self.blobs: dict[str, bytes] = {}  # sha256 hex -> content
        self.sha512: dict[str, Digest] = {}  # sha256 hex -> verified sha512 name
        self.staged: dict[str, bytes] = {}  # upload id -> bytes accepted
        self.writers: dict[str, BlobWriter] = {}

    def _writer(self, data: st.DataObject) -> tuple[str, BlobWriter]:
        upload_id = data.draw(st.sampled_from(sorted(self.writers)), label="upload")
        return upload_id, self.writers[upload_id]

    @rule(upload_id=st.sampled_from(UPLOAD_IDS), via_peer=st.booleans())
    def open_upload(self, upload_id: str, via_peer: bool) -> None:
        if upload_id in self.writers:
            return  # two writers on one session is undefined
        store = self.stores[via_peer]
        writer = _call(lambda: store.upload(upload_id))
        assert writer.offset == len(self.staged.get(upload_id, b""))
        self.staged.setdefault(upload_id, b"")
        self.writers[upload_id] = writer

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), chunk=CHUNKS)
    def write(self, data: st.DataObject, chunk: bytes) -> None:
        upload_id, writer = self._writer(data)
        _call(lambda: writer.write(chunk))
        self.staged[upload_id] += chunk
        assert writer.offset == len(self.staged[upload_id])

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        upload_id, writer = self._writer(data)
        _call(writer.close)
        del self.writers[upload_id]

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        upload_id, writer = self._writer(data)
        _call(writer.abort)
        del self.writers[upload_id], self.staged[upload_id]

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), how=st.sampled_from(["none", "sha256", "blake3", "sha512", "wrong"]))
    def commit(self, data: st.DataObject, how: str) -> None:
        upload_id, writer = self._writer(data)
        content = self.staged.pop(upload_id)
        del self.writers[upload_id]
        if how == "wrong":
            expected: Digest | None = Digest.compute(content + b"!", "blake3")
        else:
            expected = None if how == "none" else Digest.compute(content, how)
        if how == "wrong":
            try:
                _call(lambda: writer.commit(expected))
            except DigestMismatch:
                return
            raise AssertionError("commit accepted a wrong digest")
        info = _call(lambda: writer.commit(expected))
        assert info.sha256 == Digest.compute(content)
        assert info.blake3 == Digest.compute(content, "blake3")
        assert info.size == len(content)
        self.blobs[info.sha256.hex] = content
        if how == "sha512" and expected is not None:
            self.sha512[info.sha256.hex] = expected

    @rule(upload_id=st.sampled_from(UPLOAD_IDS))
    def discard(self, upload_id: str) -> None:
        if upload_id in self.writers:
            return  # undefined while a writer is open
        _call(lambda: self.stores[0].discard_upload(upload_id))
        self.staged.pop(upload_id, None)

    @rule(data=st.data(), algorithm=st.sampled_from(["sha256", "blake3", "sha512"]))
    def delete(self, data: st.DataObject, algorithm: str) -> None:
        stored = st.sampled_from(sorted(self.blobs.values())) if self.blobs else st.nothing()
        content = data.draw(stored | CHUNKS, label="blob")
        sha256 = Digest.compute(content)
        digest = Digest.compute(content, algorithm)
        known = sha256.hex in self.blobs and (algorithm != "sha512" or sha256.hex in self.sha512)
        try:
            _call(lambda: self.stores[0].delete(digest))
        except BlobNotFound:
            assert not known, f"delete({digest}) did not find a stored blob"
            return
        assert known, f"delete({digest}) found a blob the model does not have"
        del self.blobs[sha256.hex]
        self.sha512.pop(sha256.hex, None)

    @precondition(lambda self: self.blobs)
    @rule(data=st.data(), algorithm=st.sampled_from(["sha256", "blake3", "sha512"]))
    def read(self, data: st.DataObject, algorithm: str) -> None:
        content = data.draw(st.sampled_from(sorted(self.blobs.values())), label="blob")
        offset = data.draw(st.integers(0, len(content)), label="offset")
        length = data.draw(st.none() | st.integers(0, len(content) + 2), label="length")
        digest = Digest.compute(content, algorithm)
        store = self.stores[data.draw(st.booleans(), label="via_peer")]
        visible = algorithm != "sha512" or Digest.compute(content).hex in self.sha512

        async def read() -> bytes:
            return b"".join(await _collect(await store.read(digest, offset, length)))

        try:
            got = _call(read)
        except BlobNotFound:
            assert not visible, f"read({digest}) did not find a stored blob"
            return
        assert visible, f"read({digest}) found a name that was never verified"
        assert got == (content[offset:] if length is None else content[offset : offset + length])

    @invariant()
    def listings_match(self) -> None:
        store = self.stores[0]
        listed = _call(lambda: _collect(store.list()))
        assert {info.sha256.hex: info.size for info in listed} == {
            hex_: len(content) for hex_, content in self.blobs.items()
        }
        assert len(listed) == len(self.blobs)
        uploads = {u: size for u, size, _ in _call(lambda: _collect(store.list_uploads()))}
        assert set(uploads) == set(self.staged)
        for upload_id, size in uploads.items():
            if upload_id not in self.writers:  # an open writer's size is undefined
                assert size == len(self.staged[upload_id])

    def teardown(self) -> None:
        store = self.stores[0]
        for writer in self.writers.values():
            _call(writer.abort)
        for upload_id in list(self.staged):
            _call(lambda: store.discard_upload(upload_id))  # noqa: B023 - called at once
        for hex_ in list(self.blobs):
            _call(lambda: store.delete(Digest("sha256", hex_)))  # noqa: B023 - called at once


def run_model(store: BlobStore, peer: BlobStore, max_examples: int = 50) -> None:
    """Run the machine against ``store``; call from a worker thread of the store's loop."""

    class Bound(BlobStoreModel):
        def __init__(self) -> None:
            super().__init__(store, peer)

    run_state_machine_as_test(
        Bound,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
