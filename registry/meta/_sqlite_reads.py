"""The hot reads on SQLite, answered inline on the event loop.

Strategy: a manifest GET or blob HEAD is one indexed lookup that SQLite
answers in tens of microseconds from the page cache. Through the async
engine the same lookup costs a dozen hand-offs between the event loop and
aiosqlite's thread, plus SQLAlchemy's statement and row machinery: far more
than the query. So the reads a pull makes most (manifest by tag or digest,
blob by digest, tags list, catalog) go through one plain ``sqlite3``
connection, called directly from the loop, with fixed SQL.

Why this is still correct:

- Freshness. The connection is in autocommit mode, so each statement is a
  read transaction of its own and, in WAL mode, sees every transaction
  committed before it began, by this process or any other on the file. No
  result is cached here, so a manifest deleted elsewhere is gone for the next
  read once its DELETE has committed (and answered 202).
- Blocking. In WAL mode a reader neither waits for nor blocks the writer.
  The rare moments a reader must wait (WAL recovery after a crash) surface as
  ``sqlite3.OperationalError`` at once (``busy_timeout`` 0); the caller then
  takes the async engine, which waits in a thread, never on the loop.
- Threads. Every call comes from one event loop, so the connection is never
  used by two threads at once; ``check_same_thread`` is off only so ``close``
  may come from another thread at teardown.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

from oci.digest import Digest
from registry.meta.records import BlobRecord, ManifestRecord

__all__ = ["SqliteReads", "TransientRead"]

# What the fast path gives up on; the caller retries on the async engine.
TransientRead = sqlite3.OperationalError

_MANIFEST_COLUMNS = (
    "m.repository, m.digest, m.media_type, m.size, m.body, "
    "m.artifact_type, m.subject, m.annotations, m.created_at"
)
_MANIFEST_BY_DIGEST = (
    f"SELECT {_MANIFEST_COLUMNS} FROM manifests AS m WHERE m.repository = ? AND m.digest = ?"
)
# One statement for a tag: the tag row and the manifest it names.
_MANIFEST_BY_TAG = (
    f"SELECT {_MANIFEST_COLUMNS} FROM tags AS t JOIN manifests AS m "
    "ON m.repository = t.repository AND m.digest = t.digest "
    "WHERE t.repository = ? AND t.tag = ?"
)
_BLOB_COLUMNS = "b.sha256, b.blake3, b.sha512, b.size, b.tier, b.restore_state, b.created_at"
_BLOB_BY = {
    # sha256 is the link's key: the repository_blobs primary key finds it.
    "sha256": (
        f"SELECT {_BLOB_COLUMNS} FROM repository_blobs AS rb JOIN blobs AS b "
        "ON b.sha256 = rb.sha256 WHERE rb.repository = ? AND rb.sha256 = ?"
    ),
    # The other digests are unique columns of blobs: find the blob, then the link.
    "blake3": (
        f"SELECT {_BLOB_COLUMNS} FROM blobs AS b JOIN repository_blobs AS rb "
        "ON rb.sha256 = b.sha256 WHERE rb.repository = ? AND b.blake3 = ?"
    ),
    "sha512": (
        f"SELECT {_BLOB_COLUMNS} FROM blobs AS b JOIN repository_blobs AS rb "
        "ON rb.sha256 = b.sha256 WHERE rb.repository = ? AND b.sha512 = ?"
    ),
}
_REPOSITORY_EXISTS = "SELECT 1 FROM repositories WHERE name = ?"
# The (repository, seq) index answers this with one probe.
_REPOSITORY_SEQ = "SELECT max(seq) FROM events WHERE repository = ?"


def _timestamp(value: str) -> dt.datetime:
    # SQLAlchemy stores UTCDateTime on SQLite as naive UTC text (tables.py).
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


# Rows are plain tuples of what sqlite3 returns: str, int, bytes or None.
Row = tuple[Any, ...]


def _manifest(row: Row) -> ManifestRecord:
    repository, digest, media_type, size, body, artifact_type, subject, annotations, created = row
    return ManifestRecord(
        repository=repository,
        digest=Digest.parse(digest),
        media_type=media_type,
        size=size,
        body=bytes(body),
        artifact_type=artifact_type,
        subject=None if subject is None else Digest.parse(subject),
        annotations=json.loads(annotations),
        created_at=_timestamp(created),
    )


def _blob(row: Row) -> BlobRecord:
    sha256, blake3, sha512, size, tier, restore_state, created = row
    return BlobRecord(
        sha256=Digest.parse(sha256),
        blake3=Digest.parse(blake3),
        sha512=None if sha512 is None else Digest.parse(sha512),
        size=size,
        tier=tier,
        restore_state=restore_state,
        created_at=_timestamp(created),
    )


def _paged(sql: str, key: str, n: int | None, last: str | None) -> tuple[str, list[object]]:
    # Byte order and "last" exclusive, as queries._page does for the engine.
    params: list[object] = []
    if last is not None:
        sql += f" AND {key} > ?"
        params.append(last)
    sql += f" ORDER BY {key}"
    if n is not None:
        sql += " LIMIT ?"
        params.append(n)
    return sql, params


class SqliteReads:
    """One read-only connection to the metadata file, opened on first use."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, cached_statements=64
            )
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 0")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _all(self, sql: str, params: tuple[object, ...] | list[object]) -> list[Row]:
        # fetchall: the statement runs to its end and is reset, so no read
        # transaction stays open to hold back WAL checkpoints.
        rows: list[Row] = self._connection().execute(sql, params).fetchall()
        return rows

    def manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """By digest (``algorithm:hex``) or by tag, in one statement."""
        sql = _MANIFEST_BY_DIGEST if ":" in reference else _MANIFEST_BY_TAG
        rows = self._all(sql, (repo, reference))
        return _manifest(rows[0]) if rows else None

    def blob(self, repo: str, digest: Digest) -> BlobRecord | None:
        rows = self._all(_BLOB_BY[digest.algorithm], (repo, str(digest)))
        return _blob(rows[0]) if rows else None

    def tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        sql, params = _paged("SELECT tag FROM tags WHERE repository = ?", "tag", n, last)
        return [row[0] for row in self._all(sql, [repo, *params])]

    def catalog(self, n: int | None, last: str | None) -> list[str]:
        sql, params = _paged("SELECT name FROM repositories WHERE 1 = 1", "name", n, last)
        return [row[0] for row in self._all(sql, params)]

    def repository_exists(self, repo: str) -> bool:
        return bool(self._all(_REPOSITORY_EXISTS, (repo,)))

    def repository_seq(self, repo: str) -> int:
        seq: int | None = self._all(_REPOSITORY_SEQ, (repo,))[0][0]
        return seq or 0
