"""Retention plan and apply: every rule explained, protections honoured, apply == plan.

Every test runs on SQLite and on PostgreSQL (tests/meta/conftest.py). Time
is controlled through ``plan(now=...)`` (see tests/lifecycle/_world.py), and
where events must be apart in time, by the store's clock (``clocked_world``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oci.digest import Digest
from registry.config import Settings
from registry.lifecycle.eligibility import PlanItem
from registry.lifecycle.retention import RetentionPlan, apply, plan
from registry.meta import MetadataStore
from registry.meta.events import ManifestDeleted, TagDeleted
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.lifecycle._world import World, mark
from tests.meta._clock import ManualClock
from tests.meta._content import Pushed
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["make_url"]  # fixtures used here

pytestmark = pytest.mark.anyio

DAY = dt.timedelta(days=1)
REPO = "team/app"


@pytest.fixture
async def world(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[World]:
    meta = await MetadataStore.open(make_url())
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    try:
        yield World(registry)
    finally:
        await meta.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def clocked_world(
    make_url: UrlFactory, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[World]:
    """``world`` whose events carry ``clock``'s time, which the test moves."""
    meta = await MetadataStore.open(make_url(), clock=clock)
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    try:
        yield World(registry)
    finally:
        await meta.close()


def _rows(found: RetentionPlan) -> list[tuple[str, str, str]]:
    """(kind, tag or digest, reason) of each deletion, in plan order."""
    return [(i.kind, i.tag or i.digest, i.reason) for i in found.deletions]


def _item(found: RetentionPlan, kind: str, ref: str) -> PlanItem:
    return next(i for i in found.deletions if i.kind == kind and (i.tag or i.digest) == ref)


def _kept(found: RetentionPlan) -> dict[str, str]:
    return {k.tag or k.digest: k.protected_by for k in found.kept}


async def _deletions_after(world: World, seq: int) -> list[tuple[str, str, str]]:
    out = []
    for record in await world.events_after(seq):
        assert record.type in (TagDeleted.TYPE, ManifestDeleted.TYPE), record.type
        assert record.actor == "retention"
        event = record.event
        if isinstance(event, TagDeleted):
            out.append(("tag", event.repository, event.tag))
        else:
            assert isinstance(event, ManifestDeleted)
            out.append(("manifest", event.repository, str(event.digest)))
    return out


def _planned(found: RetentionPlan) -> list[tuple[str, str, str]]:
    return [(i.kind, i.repository, i.tag or i.digest) for i in found.deletions]


# -- rules and their explanations ----------------------------------------------


async def test_keep_last_by_push_time(world: World) -> None:
    world.configure('[[retention.rules]]\nname = "ci"\nrepository = "team/**"\nkeep_last = 2\n')
    a = await world.push(REPO, "a")
    b = await world.push(REPO, "b")
    await world.push(REPO, "c")
    await world.put(REPO, a, "a")  # pushed again: now the newest
    found = await plan(world.registry)
    assert _rows(found) == [
        ("tag", "b", "keep-last"),
        ("manifest", str(b.digest), "last-tag-expired"),
    ]
    item = _item(found, "tag", "b")
    assert item.rule == "ci"
    assert "tag #3 by push time, past keep_last=2" in item.detail
    assert "not among the keep_last=2 newest (tag #3)" in item.unprotected
    assert "tag is not immutable" in item.unprotected
    assert "no legal hold on the tag or its manifest" in item.unprotected
    manifest = _item(found, "manifest", str(b.digest))
    assert manifest.detail == "its last tags expire in this plan: b"
    assert "no index in the repository references it" in manifest.unprotected


async def test_keep_tags_patterns_protect_and_say_so(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n'
        'keep_tags = ["v*", "re:^rel-[0-9]+$"]\n'
    )
    for tag in ("v1", "rel-2", "rel-x", "dev"):
        await world.push(REPO, tag)
    found = await plan(world.registry)
    assert {i.tag for i in found.deletions if i.kind == "tag"} == {"rel-x", "dev"}
    assert _kept(found) == {
        "v1": "keep_tags pattern 'v*' of rule r",
        "rel-2": "keep_tags pattern 're:^rel-[0-9]+$' of rule r",
    }
    assert "matches no keep_tags pattern" in _item(found, "tag", "dev").unprotected


async def test_expire_by_age(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "age"\nrepository = "team/**"\nexpire_after = "30d"\n'
    )
    await world.push(REPO, "old")
    between = mark()
    await world.push(REPO, "new")
    assert _rows(await plan(world.registry, now=between + 30 * DAY - dt.timedelta(seconds=1))) == []
    found = await plan(world.registry, now=between + 30 * DAY)
    assert [(k, r) for k, _, r in _rows(found)] == [
        ("tag", "age"),
        ("manifest", "last-tag-expired"),
    ]
    assert _item(found, "tag", "old").detail.endswith("more than 30d ago")


async def test_expire_when_not_pulled_within(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "idle"\nrepository = "team/**"\n'
        'expire_not_pulled_after = "7d"\n'
    )
    pulled = await world.push(REPO, "pulled")
    await world.push(REPO, "idle")
    between = mark()
    await world.writes.record_pulls([(REPO, str(pulled.digest))], actor="system")
    found = await plan(world.registry, now=between + 7 * DAY)
    assert [i.tag for i in found.deletions if i.kind == "tag"] == ["idle"]
    assert "never pulled: not pulled within 7d" in _item(found, "tag", "idle").detail
    # Later, the pull itself is more than 7 days old too.
    later = await plan(world.registry, now=mark() + 7 * DAY)
    assert "last pulled" in _item(later, "tag", "pulled").detail


async def test_age_and_not_pulled_must_both_hold(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "both"\nrepository = "team/**"\n'
        'expire_after = "1d"\nexpire_not_pulled_after = "10d"\n'
    )
    pushed = await world.push(REPO, "t")
    between = mark()
    await world.writes.record_pulls([(REPO, str(pushed.digest))], actor="system")
    assert _rows(await plan(world.registry, now=between + 2 * DAY)) == []  # old, but pulled
    found = await plan(world.registry, now=between + 11 * DAY)
    assert _item(found, "tag", "t").reason == "age,not-pulled"


async def test_untagged_manifests_go_after_the_grace(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "g"\nrepository = "team/**"\nuntagged_grace = "1d"\n'
    )
    first = await world.push(REPO, "latest")
    await world.push(REPO, "latest")  # moves latest away: first is untagged from now
    between = mark()
    assert _rows(await plan(world.registry, now=between + DAY - dt.timedelta(seconds=1))) == []
    found = await plan(world.registry, now=between + DAY)
    assert _rows(found) == [("manifest", str(first.digest), "untagged-grace")]
    assert "past untagged_grace=1d" in found.deletions[0].detail


async def test_moving_a_tag_away_starts_the_old_manifest_s_untagged_grace(
    clocked_world: World, clock: ManualClock
) -> None:
    world = clocked_world
    world.configure(
        '[[retention.rules]]\nname = "g"\nrepository = "team/**"\nuntagged_grace = "1d"\n'
    )
    first = await world.push(REPO, "latest")
    moved = clock.advance(2 * DAY)
    await world.push(REPO, "latest")  # first loses latest now, two days after its push
    assert _rows(await plan(world.registry, now=moved + DAY - dt.timedelta(seconds=1))) == []
    found = await plan(world.registry, now=moved + DAY)
    assert _rows(found) == [("manifest", str(first.digest), "untagged-grace")]


async def test_children_of_an_index_are_kept_while_it_is(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "g"\nrepository = "team/**"\nuntagged_grace = "0s"\n'
    )
    amd64 = await world.push(REPO)
    arm64 = await world.push(REPO)
    parent = await world.index(REPO, [amd64, arm64], "v1")
    found = await plan(world.registry, now=mark() + DAY)
    assert _rows(found) == []
    assert _kept(found) == {
        str(amd64.digest): f"referenced by index {parent.digest}",
        str(arm64.digest): f"referenced by index {parent.digest}",
    }


async def test_rules_apply_per_repository_and_tenant(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "a"\nrepository = "team/app"\nkeep_last = 1\n'
        '[[retention.rules]]\nname = "t"\ntenant = "other"\nkeep_last = 2\n'
    )
    for repo in ("team/app", "team/lib", "other/x"):
        for tag in ("1", "2", "3"):
            await world.push(repo, tag)
    found = await plan(world.registry)
    tags = {(i.repository, i.tag, i.rule) for i in found.deletions if i.kind == "tag"}
    assert tags == {("team/app", "2", "a"), ("team/app", "1", "a"), ("other/x", "1", "t")}
    scoped = await plan(world.registry, repository="other/x")
    assert {i.repository for i in scoped.deletions} == {"other/x"}


# -- native retention ----------------------------------------------------------


async def test_native_class_keeps_then_expires_without_rules(world: World) -> None:
    world.configure('[retention.classes]\nscratch = "7d"\nrelease = "forever"\n')
    before = mark()
    scratch = await world.native("team/data", "1.0", "scratch")
    await world.native("team/data", "2.0", "release")
    await world.native("team/data", "3.0", "unconfigured")
    after = mark()
    assert _rows(await plan(world.registry, now=before + 7 * DAY)) == []
    found = await plan(world.registry, now=after + 7 * DAY)
    assert _rows(found) == [
        ("tag", "1.0", "native-retention"),
        ("manifest", str(scratch.digest), "last-tag-expired"),
    ]
    assert {i.rule for i in found.deletions} == {"native-retention"}
    assert "retention class scratch lapsed at" in found.deletions[0].detail
    # "forever" and an unconfigured class without a date never lapse.
    assert _rows(await plan(world.registry, now=after + 10_000 * DAY))[:2] == _rows(found)


async def test_native_until_applies_even_with_no_configuration(world: World) -> None:
    until = mark() + 3 * DAY
    artifact = await world.native("team/data", "1.0", "release", until=until)
    assert _rows(await plan(world.registry, now=until - dt.timedelta(seconds=1))) == []
    found = await plan(world.registry, now=until)
    assert _rows(found) == [
        ("tag", "1.0", "native-retention"),
        ("manifest", str(artifact.digest), "last-tag-expired"),
    ]


async def test_native_retention_in_force_protects_from_rules(world: World) -> None:
    world.configure(
        '[retention.classes]\nscratch = "7d"\n'
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n'
    )
    await world.native("team/data", "1.0", "scratch")
    found = await plan(world.registry, now=mark() + DAY)
    assert _rows(found) == []
    assert _kept(found)["1.0"].startswith("retention class scratch: kept until ")


async def test_extension_moves_the_date_later(world: World) -> None:
    world.configure('[retention.classes]\nscratch = "7d"\n')
    artifact = await world.native("team/data", "1.0", "scratch")
    extended = mark() + 30 * DAY
    await world.writes.extend_retention("team/data", artifact.digest, extended, actor="test")
    assert _rows(await plan(world.registry, now=mark() + 8 * DAY)) == []
    found = await plan(world.registry, now=extended)
    assert [k for k, _, _ in _rows(found)] == ["tag", "manifest"]


async def test_extension_after_planning_makes_apply_skip(world: World) -> None:
    world.configure('[retention.classes]\nscratch = "1d"\n')
    artifact = await world.native("team/data", "1.0", "scratch")
    now = mark() + 2 * DAY
    found = await plan(world.registry, now=now)
    assert len(found.deletions) == 2
    await world.writes.extend_retention("team/data", artifact.digest, now + DAY, actor="test")
    head = await world.head()
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert [s.reason for s in report.skipped][0].startswith("its retention was extended")
    assert await world.head() == head
    assert await world.tags("team/data") == ["1.0"]


# -- referrers follow their subject --------------------------------------------


async def test_referrers_go_with_their_subject_and_never_before(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 1\n'
        'untagged_grace = "0s"\n'
    )
    old = await world.push(REPO, "old")
    signature = await world.push(REPO, subject=old)
    sbom_of_signature = await world.push(REPO, subject=signature)
    kept = await world.push(REPO, "kept")
    kept_signature = await world.push(REPO, subject=kept)
    found = await plan(world.registry, now=mark() + 365 * DAY)
    assert _rows(found) == [
        ("tag", "old", "keep-last"),
        ("manifest", str(old.digest), "last-tag-expired"),
        ("manifest", str(signature.digest), "subject-deleted"),
        ("manifest", str(sbom_of_signature.digest), "subject-deleted"),
    ]
    assert str(kept_signature.digest) not in {i.digest for i in found.deletions}
    report = await apply(world.registry, found)
    assert len(report.deleted) == 4
    assert report.skipped == []
    assert await world.exists(REPO, kept_signature.digest)
    assert not await world.exists(REPO, sbom_of_signature.digest)


async def test_cosign_scheme_tags_follow_their_subject_and_are_not_counted(world: World) -> None:
    world.configure('[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 1\n')
    old = await world.push(REPO, "old")
    old_sig = await world.push(REPO, f"sha256-{old.digest.hex}.sig")
    new = await world.push(REPO, "new")
    new_sig = await world.push(REPO, f"sha256-{new.digest.hex}.sig")  # the newest tag
    found = await plan(world.registry)
    assert _rows(found) == [
        ("tag", "old", "keep-last"),
        ("manifest", str(old.digest), "last-tag-expired"),
        ("tag", f"sha256-{old.digest.hex}.sig", "follows-subject"),
        ("manifest", str(old_sig.digest), "subject-deleted"),
    ]
    report = await apply(world.registry, found)
    assert report.skipped == []
    assert await world.tags(REPO) == ["new", f"sha256-{new.digest.hex}.sig"]
    assert await world.exists(REPO, new_sig.digest)


async def test_a_referrer_of_an_absent_subject_goes_after_the_grace(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "g"\nrepository = "team/**"\nuntagged_grace = "1d"\n'
    )
    never_pushed = await world.push("team/elsewhere", "x")  # a subject this repository lacks
    orphan = await world.push(REPO, subject=never_pushed)
    between = mark()
    assert _rows(await plan(world.registry, repository=REPO, now=between + DAY / 2)) == []
    found = await plan(world.registry, repository=REPO, now=between + DAY)
    assert _rows(found) == [("manifest", str(orphan.digest), "subject-absent")]


async def test_a_skipped_subject_keeps_its_referrers(world: World) -> None:
    world.configure('[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 1\n')
    old = await world.push(REPO, "old")
    signature = await world.push(REPO, subject=old)
    await world.push(REPO, "new")
    found = await plan(world.registry)
    assert str(signature.digest) in {i.digest for i in found.deletions}
    await world.push(REPO, "another", subject=None)
    await world.put(REPO, old, "again")  # tagged again after planning: it stays
    report = await apply(world.registry, found)
    assert [i.tag for i in report.deleted] == ["old"]
    assert {s.item.digest: s.reason for s in report.skipped} == {
        str(old.digest): "tagged: again",
        str(signature.digest): f"its subject {old.digest} is still present",
    }
    assert await world.exists(REPO, signature.digest)


# -- protections: holds, immutability ------------------------------------------


async def test_held_content_is_never_planned(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n'
        'untagged_grace = "0s"\n'
    )
    held = await world.push(REPO, "held")
    signature = await world.push(REPO, subject=held)
    hold = await world.writes.place_hold(REPO, str(held.digest), "litigation", actor="legal")
    found = await plan(world.registry, now=mark() + DAY)
    assert _rows(found) == []
    assert _kept(found) == {"held": f"legal hold {hold.id}"}
    assert await world.exists(REPO, signature.digest)


async def test_a_hold_placed_after_planning_stops_apply(world: World) -> None:
    world.configure('[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n')
    target = await world.push(REPO, "t")
    await world.push(REPO, subject=target)
    found = await plan(world.registry)
    assert len(found.deletions) == 3
    await world.writes.place_hold(REPO, None, "whole repository", actor="legal")
    head = await world.head()
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert len(report.skipped) == 3
    assert "legal hold" in report.skipped[0].reason
    assert await world.head() == head


async def test_a_hold_on_a_tag_s_manifest_placed_after_planning_keeps_the_tag(
    world: World,
) -> None:
    """The store would let the tag go (the hold names the manifest); retention keeps it."""
    world.configure('[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n')
    target = await world.push(REPO, "t")
    found = await plan(world.registry)
    assert _rows(found) == [
        ("tag", "t", "keep-last"),
        ("manifest", str(target.digest), "last-tag-expired"),
    ]
    hold = await world.writes.place_hold(REPO, str(target.digest), "litigation", actor="legal")
    head = await world.head()
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert [s.reason for s in report.skipped] == [
        f"a legal hold now covers it: {hold.id}",
        "tagged: t",
    ]
    assert await world.tags(REPO) == ["t"]
    assert await world.head() == head


async def test_immutable_tags_are_never_planned_nor_deleted(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n'
        '[[immutable_tags]]\nrepository = "team/**"\ntags = ["v*"]\n'
    )
    release = await world.push(REPO, "v1", "dev")
    found = await plan(world.registry)
    assert _rows(found) == [("tag", "dev", "keep-last")]
    assert _kept(found) == {"v1": "immutable tag"}
    # Made immutable between plan and apply: the store refuses, apply skips.
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 0\n'
        '[[immutable_tags]]\nrepository = "team/**"\n'
    )
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert "immutable" in report.skipped[0].reason
    assert await world.tags(REPO) == ["dev", "v1"]
    assert await world.exists(REPO, release.digest)


# -- apply == plan; dry run ----------------------------------------------------


async def _mixed(world: World) -> list[Pushed]:
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 1\n'
        'untagged_grace = "0s"\n'
    )
    pushed = [await world.push(REPO, f"t{i}") for i in range(3)]
    await world.push(REPO, subject=pushed[0])
    await world.push("other/repo", "x")
    await world.push("other/repo", "y")
    return pushed


async def test_apply_executes_exactly_the_plan(world: World) -> None:
    await _mixed(world)
    found = await plan(world.registry, repository=REPO)
    assert len(found.deletions) == 5
    head = await world.head()
    await world.push(REPO, "after-planning")  # eligible now, but not in the plan
    pushed_after = await world.head()
    report = await apply(world.registry, found)
    assert report.skipped == []
    assert report.deleted == list(found.deletions)
    assert await _deletions_after(world, pushed_after) == _planned(found)
    assert await world.tags(REPO) == ["after-planning", "t2"]
    assert await world.tags("other/repo") == ["x", "y"]  # outside the plan's scope
    assert head < pushed_after


async def test_dry_run_changes_nothing(world: World) -> None:
    await _mixed(world)
    found = await plan(world.registry)
    head = await world.head()
    report = await apply(world.registry, found, dry_run=True)
    assert report.dry_run
    assert report.deleted == list(found.deletions)
    assert report.skipped == []
    assert await world.head() == head
    assert await plan(world.registry, now=found.now) == found


async def test_a_tag_pushed_again_after_planning_is_skipped(world: World) -> None:
    world.configure('[[retention.rules]]\nname = "r"\nrepository = "team/**"\nkeep_last = 1\n')
    old = await world.push(REPO, "old")
    await world.push(REPO, "new")
    found = await plan(world.registry)
    await world.put(REPO, old, "old")
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert report.skipped[0].reason.startswith("the tag was pushed again")
    assert report.skipped[1].reason == "tagged: old"


async def test_a_pull_after_planning_saves_an_idle_tag(world: World) -> None:
    world.configure(
        '[[retention.rules]]\nname = "r"\nrepository = "team/**"\nexpire_not_pulled_after = "1d"\n'
    )
    idle = await world.push(REPO, "idle")
    between = mark()
    found = await plan(world.registry, now=between + DAY)
    assert len(found.deletions) == 2
    await world.writes.record_pulls([(REPO, str(idle.digest))], actor="system")
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert report.skipped[0].reason.startswith("the manifest was pulled at")
    assert await world.tags(REPO) == ["idle"]


async def test_an_index_pushed_after_planning_keeps_the_child_it_references(
    world: World,
) -> None:
    world.configure(
        '[[retention.rules]]\nname = "g"\nrepository = "team/**"\nuntagged_grace = "0s"\n'
    )
    child = await world.push(REPO)
    found = await plan(world.registry, now=mark() + DAY)
    assert _rows(found) == [("manifest", str(child.digest), "untagged-grace")]
    parent = await world.index(REPO, [child], "v1")
    report = await apply(world.registry, found)
    assert report.deleted == []
    assert [s.reason for s in report.skipped] == [f"index {parent.digest} references it"]
    assert await world.exists(REPO, child.digest)


async def test_replaying_the_log_after_apply_gives_the_same_views(world: World) -> None:
    await _mixed(world)
    await apply(world.registry, await plan(world.registry))
    before = (await world.tags(REPO), await world.tags("other/repo"))
    await world.meta.rebuild_views()
    assert (await world.tags(REPO), await world.tags("other/repo")) == before


async def test_plan_digest_names_its_deletions(world: World) -> None:
    await _mixed(world)
    found = await plan(world.registry)
    again = await plan(world.registry, now=found.now)
    assert again.digest == found.digest
    fewer = RetentionPlan(found.now, None, found.deletions[1:], ())
    assert fewer.digest != found.digest
    document = found.to_json()
    assert document["digest"] == found.digest
    assert document["deletions"][0]["unprotected"]
    assert Digest.parse(found.digest)
