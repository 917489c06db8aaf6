"""Retention: plan what the rules make deletable, then apply exactly that plan.

Theory of operation. ``plan`` reads each repository's views (tags,
manifests, index references, the held closure) without the write lock and
hands them to ``eligibility.evaluate``; nothing changes. ``apply`` walks the
plan's deletions in order (a manifest's tags before it, a subject before its
referrers) in short write transactions (up to 32 items, about 50 ms of
lock at most, so pushes keep flowing). For each item, under the lock, it
re-checks every fact the decision rested on (``Conditions``: the tag was not
re-pushed or pulled since, it is still past keep_last, the manifest is still
untagged and unreferenced, its retention was not extended, its subject is
gone) and then lets the rules (``Rules.decide_tag_delete`` /
``decide_manifest_delete``) refuse held or immutable content, exactly as a
DELETE from a client would be refused. An item that no longer passes is
reported as skipped, never deleted; nothing outside the plan is touched.

A dry run performs the same checks on a read connection, treating the items
it would have deleted as gone, and changes nothing.

The clock is ``plan.now``: apply judges every cutoff against the time the
plan was computed, so a plan never deletes more than it listed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from oci.digest import Digest
from oci.errors import Denied, ManifestUnknown
from registry.lifecycle.eligibility import (
    KeptItem,
    ManifestRow,
    PlanItem,
    Snapshot,
    TagRow,
    counted_by_keep_last,
    evaluate,
    native_retention,
)
from registry.meta import Transaction, retention_queries
from registry.meta.events import ManifestDeleted, TagDeleted
from registry.meta.holds import protected
from registry.rules import Rules
from registry.rules.policy import LifecyclePolicy, policy_of
from registry.service.registry import Registry

__all__ = ["ApplyReport", "RetentionPlan", "Skipped", "apply", "plan"]

_BATCH_ITEMS = 32
_BATCH_SECONDS = 0.05


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What retention would delete at ``now``, and what it would but something protects."""

    now: dt.datetime
    repository: str | None
    deletions: tuple[PlanItem, ...]
    kept: tuple[KeptItem, ...]

    @property
    def digest(self) -> str:
        """Names this plan: its time, scope and deletions (what ``apply`` would do)."""
        document = {
            "now": _time(self.now),
            "repository": self.repository,
            "deletions": [[i.kind, i.repository, i.digest, i.tag, i.rule, i.reason]
                          for i in self.deletions],
        }  # fmt: skip
        encoded = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(encoded).hexdigest()

    def only(self, keys: Collection[tuple[str, str, str, str | None]]) -> RetentionPlan:
        """This plan restricted to the deletions ``keys`` name (``PlanItem.key``), in order."""
        kept = tuple(item for item in self.deletions if item.key in keys)
        return RetentionPlan(self.now, self.repository, kept, ())

    def to_json(self) -> dict[str, Any]:
        return {
            "now": _time(self.now),
            "repository": self.repository,
            "digest": self.digest,
            "deletions": [_item_json(i) for i in self.deletions],
            "kept": [
                {
                    "kind": k.kind,
                    "repository": k.repository,
                    "digest": k.digest,
                    "tag": k.tag,
                    "rule": k.rule,
                    "reason": k.reason,
                    "protected_by": k.protected_by,
                }
                for k in self.kept
            ],
        }


def _item_json(item: PlanItem) -> dict[str, Any]:
    return {
        "kind": item.kind,
        "repository": item.repository,
        "digest": item.digest,
        "tag": item.tag,
        "rule": item.rule,
        "reason": item.reason,
        "detail": item.detail,
        "unprotected": list(item.unprotected),
    }


@dataclass(frozen=True, slots=True)
class Skipped:
    item: PlanItem
    reason: str


@dataclass(slots=True)
class ApplyReport:
    plan_digest: str
    dry_run: bool
    deleted: list[PlanItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan_digest,
            "dry_run": self.dry_run,
            "deleted": [_item_json(i) for i in self.deleted],
            "skipped": [{**_item_json(s.item), "skipped": s.reason} for s in self.skipped],
        }


# -- plan ----------------------------------------------------------------------


async def _snapshot(conn: AsyncConnection, repository: str) -> Snapshot:
    tag_rows = await retention_queries.tag_states(conn, repository)
    manifest_rows = await retention_queries.manifest_states(conn, repository)
    references = await retention_queries.index_references(conn, repository)
    rows = {row.digest: row for row in manifest_rows}
    parents: dict[str, set[str]] = defaultdict(set)
    for parent, child in references:
        parents[child].add(parent)
    return Snapshot(
        repository=repository,
        # A tag whose manifest row is missing cannot exist (foreign key); guard anyway.
        tags=[TagRow(r.tag, r.digest, r.updated_at) for r in tag_rows if r.digest in rows],
        manifests=rows,
        parents={child: frozenset(p) for child, p in parents.items()},
        held=await protected(conn, repository),
    )


async def plan(
    registry: Registry, *, now: dt.datetime | None = None, repository: str | None = None
) -> RetentionPlan:
    """What the configured rules and native retention make deletable at ``now``."""
    now = dt.datetime.now(dt.UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("plan: now must be timezone-aware")
    policy = policy_of(registry.settings)
    immutable = registry.rules.immutable
    deletions: list[PlanItem] = []
    kept: list[KeptItem] = []
    async with registry.meta.reading() as conn:
        if repository is None:
            names: Iterable[str] = await retention_queries.repository_names(conn)
        else:
            names = [repository]
        for name in names:
            decided = evaluate(await _snapshot(conn, name), policy, now, immutable)
            deletions += decided.deletions
            kept += decided.kept
    return RetentionPlan(now, repository, tuple(deletions), tuple(kept))


# -- apply ---------------------------------------------------------------------


@dataclass(slots=True)
class _Gone:
    """What this apply has deleted so far (or, in a dry run, would have)."""

    tags: set[tuple[str, str]] = field(default_factory=set)
    manifests: set[tuple[str, str]] = field(default_factory=set)


class _NoLongerEligible(Exception):
    pass


async def _tag_state(conn: AsyncConnection, repo: str, tag: str) -> TagRow | None:
    state = await retention_queries.tag_state(conn, repo, tag)
    return None if state is None else TagRow(tag, state.digest, state.updated_at)


async def _manifest_row(conn: AsyncConnection, repo: str, digest: str) -> ManifestRow | None:
    return await retention_queries.manifest_state(conn, repo, digest)


async def _recheck_tag(
    conn: AsyncConnection, item: PlanItem, now: dt.datetime, policy: LifecyclePolicy, gone: _Gone
) -> None:
    assert item.tag is not None
    c = item.conditions
    state = await _tag_state(conn, item.repository, item.tag)
    if state is None or (item.repository, item.tag) in gone.tags:
        raise _NoLongerEligible("the tag no longer exists")
    if state.digest != item.digest:
        raise _NoLongerEligible(f"the tag now points at {state.digest}")
    if c.pushed_at is not None and state.pushed_at != c.pushed_at:
        raise _NoLongerEligible(f"the tag was pushed again at {_time(state.pushed_at)}")
    if c.pushed_before is not None and state.pushed_at > c.pushed_before:
        raise _NoLongerEligible("the tag is younger than the rule's expire_after")
    row = await _manifest_row(conn, item.repository, item.digest)
    if row is None:
        raise _NoLongerEligible("its manifest no longer exists")
    if c.idle_before is not None:
        last = state.pushed_at if row.pulled_at is None else max(row.pulled_at, state.pushed_at)
        if last > c.idle_before:
            raise _NoLongerEligible(f"the manifest was pulled at {_time(last)}")
    if c.outside_last is not None and not await _outside_last(
        conn, item.repository, state, c.outside_last, gone
    ):
        raise _NoLongerEligible(
            f"it is now among the keep_last={c.outside_last} most recently pushed tags"
        )
    await _recheck_common(conn, item, row, now, policy, gone)


async def _outside_last(
    conn: AsyncConnection, repo: str, tag: TagRow, keep_last: int, gone: _Gone
) -> bool:
    """Whether at least ``keep_last`` counted tags were pushed after ``tag`` (the plan's order).

    Reads the newest first and stops as soon as it has seen enough, so an
    old tag in a large repository costs a few rows, not all of them.
    """
    if keep_last <= 0:
        return True
    batch = keep_last + 64
    offset = seen = 0
    while True:
        rows = await retention_queries.newer_tags(conn, repo, tag.tag, tag.pushed_at, batch, offset)
        for name, subject in rows:
            if (repo, name) not in gone.tags and counted_by_keep_last(name, subject):
                seen += 1
                if seen >= keep_last:
                    return True
        if len(rows) < batch:
            return seen >= keep_last
        offset += batch


async def _recheck_common(
    conn: AsyncConnection,
    item: PlanItem,
    row: ManifestRow,
    now: dt.datetime,
    policy: LifecyclePolicy,
    gone: _Gone,
) -> None:
    native = native_retention(row, policy)
    if native.in_force(now):
        raise _NoLongerEligible("its retention was extended: " + native.label)
    subject = item.conditions.subject
    if (
        subject is not None
        and (item.repository, subject) not in gone.manifests
        and await _manifest_row(conn, item.repository, subject) is not None
    ):
        raise _NoLongerEligible(f"its subject {subject} is still present")
    if item.kind == "tag":
        # The store refuses a held tag, not a tag of a held manifest; retention keeps both.
        # (A manifest item's holds are Rules.decide_manifest_delete's.)
        held = await protected(conn, item.repository)
        if held.covers_manifest(item.digest):
            raise _NoLongerEligible("a legal hold now covers it: " + ", ".join(held.hold_ids))


async def _recheck_manifest(
    conn: AsyncConnection, item: PlanItem, now: dt.datetime, policy: LifecyclePolicy, gone: _Gone
) -> None:
    c = item.conditions
    row = await _manifest_row(conn, item.repository, item.digest)
    if row is None or (item.repository, item.digest) in gone.manifests:
        raise _NoLongerEligible("the manifest no longer exists")
    tagged = await retention_queries.tags_pointing_at(conn, item.repository, item.digest)
    remaining = sorted(t for t in tagged if (item.repository, t) not in gone.tags)
    if remaining:
        raise _NoLongerEligible("tagged: " + ", ".join(remaining))
    missed = [t for t in c.with_tags if (item.repository, t) not in gone.tags]
    if missed:
        raise _NoLongerEligible("its tag deletions were skipped: " + ", ".join(missed))
    if c.untagged_before is not None and row.untagged_since > c.untagged_before:
        raise _NoLongerEligible(f"it was touched at {_time(row.untagged_since)}")
    parents = await retention_queries.index_parents(conn, item.repository, item.digest)
    kept_parents = [p for p in parents if (item.repository, p) not in gone.manifests]
    if kept_parents:
        raise _NoLongerEligible(f"index {kept_parents[0]} references it")
    await _recheck_common(conn, item, row, now, policy, gone)


async def _delete(
    rules: Rules,
    conn: AsyncConnection,
    tx: Transaction | None,
    item: PlanItem,
    now: dt.datetime,
    policy: LifecyclePolicy,
    gone: _Gone,
    actor: str,
) -> str | None:
    """Re-check one item on ``conn`` and delete it through ``tx`` (None: a dry run).

    Returns why it was skipped, or None when it was deleted (or would be).
    """
    recheck = _recheck_tag if item.kind == "tag" else _recheck_manifest
    try:
        await recheck(conn, item, now, policy, gone)
        await _rules_check(rules, conn, item)
        if tx is not None:
            if item.tag is not None:
                await tx.append_event(TagDeleted(item.repository, item.tag), actor)
            else:
                await tx.append_event(
                    ManifestDeleted(item.repository, Digest.parse(item.digest)), actor
                )
    except _NoLongerEligible as exc:
        return str(exc)
    except (Denied, ManifestUnknown) as exc:
        return exc.message
    if item.tag is not None:
        gone.tags.add((item.repository, item.tag))
    else:
        gone.manifests.add((item.repository, item.digest))
    return None


async def _rules_check(rules: Rules, conn: AsyncConnection, item: PlanItem) -> None:
    # The rules (legal holds, immutable tags) that refuse a client's DELETE. Retention
    # gives no override, so a decision that lets the item go records nothing.
    if item.tag is not None:
        await rules.decide_tag_delete(conn, item.repository, item.tag, None)
    else:
        await rules.decide_manifest_delete(conn, item.repository, item.digest, None)


async def apply(
    registry: Registry,
    plan: RetentionPlan,
    *,
    actor: str = "retention",
    dry_run: bool = False,
    progress: Callable[[PlanItem, str | None], None] | None = None,
) -> ApplyReport:
    """Delete exactly the plan's items that are still eligible; skip (and say why) the rest.

    ``progress`` is called after each item with the skip reason (None: deleted).
    """
    policy = policy_of(registry.settings)
    report = ApplyReport(plan.digest, dry_run)
    gone = _Gone()
    meta, rules = registry.meta, registry.rules

    def record(item: PlanItem, skipped: str | None) -> None:
        if skipped is None:
            report.deleted.append(item)
        else:
            report.skipped.append(Skipped(item, skipped))
        if progress is not None:
            progress(item, skipped)

    if dry_run:
        async with meta.reading() as conn:
            for item in plan.deletions:
                record(
                    item,
                    await _delete(rules, conn, None, item, plan.now, policy, gone, actor),
                )
        return report
    pending = list(plan.deletions)
    while pending:
        # A few items per transaction: fewer commits, and the write lock is
        # never held for longer than about _BATCH_SECONDS (pushes wait that long at most).
        done: list[tuple[PlanItem, str | None]] = []
        async with meta.transaction() as tx:
            started = time.monotonic()
            while pending and len(done) < _BATCH_ITEMS:
                item = pending.pop(0)
                skipped = await _delete(rules, tx.conn, tx, item, plan.now, policy, gone, actor)
                done.append((item, skipped))
                if time.monotonic() - started >= _BATCH_SECONDS:
                    break
        for item, skipped in done:  # committed: now they count
            record(item, skipped)
    return report
