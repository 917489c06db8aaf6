"""Token buckets in the database, so limits hold across every server process.

Theory of operation. A bucket is one row: ``tokens`` left at instant
``updated``. Taking a token is a single conditional UPDATE that refills by
``rate * elapsed`` (capped at ``burst``) and subtracts one, but only where
the refilled amount is at least one; a statement is atomic on both SQLite
and PostgreSQL, so concurrent processes never both spend the last token.
When no row changed, either the bucket does not exist yet (insert it full,
minus this request; a concurrent insert loses quietly and retries) or it is
empty, and the wait until the next token is the answer's ``Retry-After``.
"""

from __future__ import annotations

import math
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.auth.tables import buckets

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def take(
        self, key: str, rate: float, burst: int, now: float | None = None
    ) -> float | None:
        """Spend one token of ``key``; None if granted, else seconds until one is available."""
        if rate <= 0 or burst <= 0:
            return None
        now = time.time() if now is None else now
        delta = sa.literal(now, sa.Float) - buckets.c.updated
        refilled = buckets.c.tokens + sa.case((delta > 0, delta), else_=0.0) * rate
        capped = sa.case((refilled > burst, float(burst)), else_=refilled)
        spend = (
            buckets.update()
            .where(buckets.c.key == key, capped >= 1.0)
            .values(tokens=capped - 1.0, updated=sa.case((delta > 0, now), else_=buckets.c.updated))
        )
        for _ in range(3):
            async with self._engine.begin() as conn:
                if (await conn.execute(spend)).rowcount:
                    return None
                row = (
                    await conn.execute(
                        sa.select(buckets.c.tokens, buckets.c.updated).where(buckets.c.key == key)
                    )
                ).first()
                if row is not None:
                    available = min(float(burst), row.tokens + max(0.0, now - row.updated) * rate)
                    return float(max(1.0, math.ceil((1.0 - available) / rate)))
                values = {"key": key, "tokens": float(burst) - 1.0, "updated": now}
                dialect = conn.dialect.name
                insert = (
                    postgresql.insert(buckets)
                    if dialect == "postgresql"
                    else sqlite.insert(buckets)
                ).values(**values)
                if (await conn.execute(insert.on_conflict_do_nothing())).rowcount:
                    return None
        return 1.0

    async def peek(
        self, key: str, rate: float, burst: int, now: float | None = None
    ) -> float | None:
        """Like ``take`` without spending: None if a token is available, else the wait."""
        now = time.time() if now is None else now
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(buckets.c.tokens, buckets.c.updated).where(buckets.c.key == key)
                )
            ).first()
        if row is None:
            return None
        available = min(float(burst), row.tokens + max(0.0, now - row.updated) * rate)
        return None if available >= 1.0 else max(1.0, math.ceil((1.0 - available) / rate))
