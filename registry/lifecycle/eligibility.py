"""Which tags and manifests of one repository retention may delete, and why (no I/O).

Theory of operation. ``evaluate`` takes a snapshot of one repository's
views and decides in three passes, each building on the last:

1. Tags (of manifests without a subject). A tag *expires* when the native
   retention of its manifest has lapsed, or when every expiry condition of
   the repository's rule holds (pushed before ``expire_after``; not pulled
   within ``expire_not_pulled_after``; with neither set, not among the
   ``keep_last`` newest). An expiring tag is *kept* when a keep condition of
   the rule (``keep_tags``, ``keep_last``), the native retention still in
   force, a legal hold (on the tag or its manifest) or immutability protects
   it; otherwise it is deleted.
2. Manifests without a subject. A tagged one goes when all its tags go
   (``last-tag-expired``); an untagged one when its native retention lapsed
   or it has been untagged past the rule's ``untagged_grace``. Kept when a
   hold covers it, its native retention is in force, or an index in the
   repository references it (a child of an index is released by the index's
   deletion, which restarts its grace: it goes in a later plan).
3. Referrers (manifests with a subject, and manifests tagged by cosign's
   tag scheme ``sha256-<hex>.sig|.att|.sbom``, whose subject the tag names)
   follow their subject, and only it:
   one goes when its subject goes in this plan, or when its subject has been
   absent past the rule's ``untagged_grace``. Never by age or tags of its
   own, so a signature or SBOM outlives nothing it describes. Repeated to a
   fixpoint, since referrers can refer to referrers.

Referrers' tags are not counted by ``keep_last``: it keeps the N newest
tags of the images themselves, not of their signatures.

Every decision carries the rule, a reason code, a sentence, the checks that
found nothing protecting it, and the ``Conditions`` apply re-checks under
the write lock (registry/lifecycle/retention.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from registry.meta.holds import Protected
from registry.meta.retention_queries import RetainedManifest
from registry.rules.policy import FOREVER, LifecyclePolicy, format_duration

__all__ = [
    "NATIVE_RULE",
    "Conditions",
    "Evaluation",
    "KeptItem",
    "ManifestRow",
    "NativeRetention",
    "PlanItem",
    "Snapshot",
    "TagRow",
    "evaluate",
    "counted_by_keep_last",
    "native_retention",
    "scheme_subject",
]

# The "rule" named by decisions that come from a native artifact's own retention.
NATIVE_RULE = "native-retention"

ItemKind = Literal["tag", "manifest"]

# cosign's tag scheme for signatures, attestations and SBOMs of a manifest:
# https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md
_SCHEME_TAG = re.compile(r"(sha256|sha512)-([0-9a-f]{64,128})\.(?:sig|att|sbom)")


def scheme_subject(tag: str) -> str | None:
    """The digest a cosign scheme tag (``sha256-<hex>.sig``) names, else None."""
    found = _SCHEME_TAG.fullmatch(tag)
    return None if found is None else f"{found[1]}:{found[2]}"


def counted_by_keep_last(tag: str, subject: str | None) -> bool:
    """keep_last ranks the tags of images, not those of referrers (signatures, SBOMs)."""
    return subject is None and scheme_subject(tag) is None


@dataclass(frozen=True, slots=True)
class TagRow:
    tag: str
    digest: str
    pushed_at: dt.datetime


# A manifest as retention reads it from the views.
ManifestRow = RetainedManifest


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One repository as the views showed it."""

    repository: str
    tags: list[TagRow]
    manifests: Mapping[str, ManifestRow]
    parents: Mapping[str, frozenset[str]]  # child manifest -> manifests referencing it
    held: Protected


@dataclass(frozen=True, slots=True)
class Conditions:
    """The facts a decision rested on; apply deletes only while all still hold."""

    pushed_at: dt.datetime | None = None  # tag: not re-pushed since
    pushed_before: dt.datetime | None = None  # tag: pushed no later than this
    idle_before: dt.datetime | None = None  # tag: last pull (or push) no later than this
    outside_last: int | None = None  # tag: at least this many tags pushed more recently
    untagged_before: dt.datetime | None = None  # manifest: untouched since
    with_tags: tuple[str, ...] = ()  # manifest: its last tags, deleted earlier in the plan
    subject: str | None = None  # manifest: its subject must be gone


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One deletion: a tag (``tag`` set) or a manifest, with why it is eligible."""

    kind: ItemKind
    repository: str
    digest: str
    tag: str | None
    rule: str
    reason: str
    detail: str
    unprotected: tuple[str, ...]  # each protection checked, and why it does not apply
    conditions: Conditions = field(default_factory=Conditions, compare=False)

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.kind, self.repository, self.digest, self.tag)


@dataclass(frozen=True, slots=True)
class KeptItem:
    """Something a rule would delete, and what protects it."""

    kind: ItemKind
    repository: str
    digest: str
    tag: str | None
    rule: str
    reason: str
    protected_by: str


@dataclass(slots=True)
class Evaluation:
    deletions: list[PlanItem] = field(default_factory=list)
    kept: list[KeptItem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NativeRetention:
    """A manifest's own keep-until: ``floor`` None means it has none."""

    floor: dt.datetime | None
    forever: bool
    native: bool  # a native artifact (it has a retention class): lapsing makes it expire
    label: str

    def in_force(self, now: dt.datetime) -> bool:
        return self.forever or (self.floor is not None and now < self.floor)

    def lapsed(self, now: dt.datetime) -> bool:
        return self.native and not self.forever and self.floor is not None and self.floor <= now


def native_retention(row: ManifestRow, policy: LifecyclePolicy) -> NativeRetention:
    """max(created + class duration, retain_until); extensions only move retain_until later."""
    floors = [] if row.retain_until is None else [row.retain_until]
    forever = False
    label = "kept until"
    if row.retention_class is not None:
        label = f"retention class {row.retention_class}"
        duration = policy.class_duration(row.retention_class)
        if duration == FOREVER:
            forever = True
        elif duration is not None:
            floors.append(row.created_at + duration)
    return NativeRetention(
        floor=max(floors) if floors else None,
        forever=forever,
        native=row.retention_class is not None,
        label=label,
    )


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _native_text(native: NativeRetention) -> str:
    if native.forever:
        return f"{native.label}: kept forever"
    if native.floor is None:
        return "no native retention"
    return f"{native.label}: kept until {_when(native.floor)}"


@dataclass(frozen=True, slots=True)
class _Expiry:
    rule: str
    reason: str
    detail: str
    conditions: Conditions


class _Evaluator:
    def __init__(
        self,
        snap: Snapshot,
        policy: LifecyclePolicy,
        now: dt.datetime,
        immutable: Callable[[str, str], bool],
    ) -> None:
        self.snap = snap
        self.repo = snap.repository
        self.policy = policy
        self.now = now
        self.immutable = immutable
        self.rule = policy.rule_for(snap.repository)
        self.out = Evaluation()
        ordered = sorted(snap.tags, key=lambda t: (-t.pushed_at.timestamp(), t.tag))
        self.ordered = ordered
        self.tags_of: dict[str, list[TagRow]] = defaultdict(list)
        # A manifest's subject: its own, or the one a cosign scheme tag on it names.
        self.subject_of = {d: row.subject for d, row in snap.manifests.items()}
        for t in ordered:
            self.tags_of[t.digest].append(t)
            implied = scheme_subject(t.tag)
            if implied is not None and self.subject_of[t.digest] is None:
                self.subject_of[t.digest] = implied
        counted = [
            t for t in ordered if counted_by_keep_last(t.tag, snap.manifests[t.digest].subject)
        ]
        self.rank = {t.tag: i for i, t in enumerate(counted)}
        self.deleted_tags: dict[str, set[str]] = defaultdict(set)
        self.deleted_manifests: set[str] = set()

    def native(self, digest: str) -> NativeRetention:
        return native_retention(self.snap.manifests[digest], self.policy)

    def keep(self, kind: ItemKind, digest: str, tag: str | None, why: _Expiry, by: str) -> None:
        self.out.kept.append(KeptItem(kind, self.repo, digest, tag, why.rule, why.reason, by))

    def delete(
        self, kind: ItemKind, digest: str, tag: str | None, why: _Expiry, checks: list[str]
    ) -> None:
        self.out.deletions.append(
            PlanItem(
                kind, self.repo, digest, tag, why.rule, why.reason, why.detail, tuple(checks),
                why.conditions,
            )
        )  # fmt: skip
        if kind == "tag":
            assert tag is not None
            self.deleted_tags[digest].add(tag)
        else:
            self.deleted_manifests.add(digest)

    # -- pass 1: tags --------------------------------------------------------

    def tag_expiry(self, t: TagRow) -> _Expiry | None:
        native = self.native(t.digest)
        if native.lapsed(self.now):
            assert native.floor is not None
            return _Expiry(
                NATIVE_RULE,
                "native-retention",
                f"the artifact's {native.label} lapsed at {_when(native.floor)}",
                Conditions(pushed_at=t.pushed_at),
            )
        rule = self.rule
        if rule is None or not rule.expires_tags:
            return None
        reasons: list[str] = []
        parts: list[str] = []
        pushed_before = idle_before = None
        if rule.expire_after is not None:
            pushed_before = self.now - rule.expire_after
            if t.pushed_at > pushed_before:
                return None
            reasons.append("age")
            parts.append(
                f"pushed {_when(t.pushed_at)}, more than {format_duration(rule.expire_after)} ago"
            )
        if rule.expire_not_pulled_after is not None:
            idle_before = self.now - rule.expire_not_pulled_after
            pulled = self.snap.manifests[t.digest].pulled_at
            last = t.pushed_at if pulled is None else max(pulled, t.pushed_at)
            if last > idle_before:
                return None
            reasons.append("not-pulled")
            since = "never pulled" if pulled is None else f"last pulled {_when(pulled)}"
            parts.append(
                f"{since}: not pulled within {format_duration(rule.expire_not_pulled_after)}"
            )
        outside_last = None
        if not reasons:  # keep_last alone: being past the N newest is the condition
            assert rule.keep_last is not None
            if self.rank[t.tag] < rule.keep_last:
                return None
            outside_last = rule.keep_last
            reasons.append("keep-last")
            parts.append(
                f"tag #{self.rank[t.tag] + 1} by push time, past keep_last={rule.keep_last}"
            )
        elif rule.keep_last is not None:
            outside_last = rule.keep_last
        return _Expiry(
            rule.name,
            ",".join(reasons),
            "; ".join(parts),
            Conditions(
                pushed_at=t.pushed_at,
                pushed_before=pushed_before,
                idle_before=idle_before,
                outside_last=outside_last,
            ),
        )

    def tag_protection(self, t: TagRow, why: _Expiry, checks: list[str]) -> str | None:
        rule = self.rule
        if rule is not None:
            pattern = rule.kept_by_pattern(t.tag)
            if pattern is not None:
                return f"keep_tags pattern {pattern.text!r} of rule {rule.name}"
            if rule.keep_last is not None:
                rank = self.rank[t.tag] + 1
                if rank <= rule.keep_last:
                    return f"keep_last={rule.keep_last} of rule {rule.name} (tag #{rank})"
                checks.append(f"not among the keep_last={rule.keep_last} newest (tag #{rank})")
            if rule.keep_tags:
                checks.append("matches no keep_tags pattern")
        native = self.native(t.digest)
        if native.in_force(self.now):
            return _native_text(native)
        checks.append(_native_text(native) if why.rule != NATIVE_RULE else why.detail)
        held = self.snap.held
        if held.covers_tag(t.tag) or held.covers_manifest(t.digest):
            return "legal hold " + ", ".join(held.hold_ids)
        checks.append("no legal hold on the tag or its manifest")
        if self.immutable(self.repo, t.tag):
            return "immutable tag"
        checks.append("tag is not immutable")
        return None

    def tags(self) -> None:
        for t in self.ordered:
            if self.subject_of[t.digest] is not None:
                continue  # a referrer's tags follow the referrer (pass 3)
            why = self.tag_expiry(t)
            if why is None:
                continue
            checks: list[str] = []
            protection = self.tag_protection(t, why, checks)
            if protection is not None:
                self.keep("tag", t.digest, t.tag, why, protection)
            else:
                self.delete("tag", t.digest, t.tag, why, checks)

    # -- pass 2: manifests without a subject -------------------------------

    def manifest_expiry(self, row: ManifestRow) -> _Expiry | None:
        tagged = [t.tag for t in self.tags_of[row.digest]]
        native = native_retention(row, self.policy)
        if tagged:
            if not set(tagged) <= self.deleted_tags[row.digest]:
                return None
            rules = {i.rule for i in self.out.deletions if i.digest == row.digest and i.tag}
            named = sorted(rules - {NATIVE_RULE})
            return _Expiry(
                named[0] if named else NATIVE_RULE,
                "last-tag-expired",
                "its last tags expire in this plan: " + ", ".join(sorted(tagged)),
                Conditions(with_tags=tuple(sorted(tagged))),
            )
        if native.lapsed(self.now):
            assert native.floor is not None
            return _Expiry(
                NATIVE_RULE,
                "native-retention",
                f"untagged, and its {native.label} lapsed at {_when(native.floor)}",
                Conditions(),
            )
        rule = self.rule
        if rule is None or rule.untagged_grace is None:
            return None
        cutoff = self.now - rule.untagged_grace
        if row.untagged_since > cutoff:
            return None
        return _Expiry(
            rule.name,
            "untagged-grace",
            f"untagged since {_when(row.untagged_since)}, "
            f"past untagged_grace={format_duration(rule.untagged_grace)}",
            Conditions(untagged_before=cutoff),
        )

    def manifest_protection(self, row: ManifestRow, why: _Expiry, checks: list[str]) -> str | None:
        held = self.snap.held
        if held.covers_manifest(row.digest):
            return "legal hold " + ", ".join(held.hold_ids)
        checks.append("no legal hold covers it or anything referring to it")
        native = native_retention(row, self.policy)
        if native.in_force(self.now):
            return _native_text(native)
        if why.rule != NATIVE_RULE:
            checks.append(_native_text(native))
        parents = sorted(self.snap.parents.get(row.digest, ()))
        if parents:
            return f"referenced by index {parents[0]}"
        checks.append("no index in the repository references it")
        if self.subject_of[row.digest] is None:
            checks.append("not a referrer (it has no subject)")
        return None

    def manifests(self) -> None:
        rows = sorted(self.snap.manifests.values(), key=lambda r: (r.created_at, r.digest))
        for row in rows:
            if self.subject_of[row.digest] is not None:
                continue
            why = self.manifest_expiry(row)
            if why is None:
                continue
            checks: list[str] = []
            protection = self.manifest_protection(row, why, checks)
            if protection is not None:
                self.keep("manifest", row.digest, None, why, protection)
            else:
                self.delete("manifest", row.digest, None, why, checks)

    # -- pass 3: referrers follow their subject --------------------------------

    def referrer_expiry(self, row: ManifestRow) -> _Expiry | None:
        subject = self.subject_of[row.digest]
        assert subject is not None
        if subject in self.deleted_manifests:
            return _Expiry(
                next(
                    i.rule
                    for i in self.out.deletions
                    if i.kind == "manifest" and i.digest == subject
                ),
                "subject-deleted",
                f"its subject {subject} is deleted in this plan",
                Conditions(subject=subject),
            )
        rule = self.rule
        if subject in self.snap.manifests or rule is None or rule.untagged_grace is None:
            return None
        cutoff = self.now - rule.untagged_grace
        if row.untagged_since > cutoff:
            return None
        return _Expiry(
            rule.name,
            "subject-absent",
            f"its subject {subject} is absent, and it was last touched "
            f"{_when(row.untagged_since)}, past untagged_grace="
            f"{format_duration(rule.untagged_grace)}",
            Conditions(subject=subject, untagged_before=cutoff),
        )

    def referrer(self, row: ManifestRow) -> bool:
        """Decide one referrer; True when it was decided (deleted or kept)."""
        why = self.referrer_expiry(row)
        if why is None:
            return False
        subject = why.conditions.subject
        checks: list[str] = []
        protection = self.manifest_protection(row, why, checks)
        tags = [t.tag for t in self.tags_of[row.digest]]
        if protection is None:
            for tag in tags:
                if self.snap.held.covers_tag(tag):
                    protection = f"its tag {tag} is under legal hold"
                elif self.immutable(self.repo, tag):
                    protection = f"its tag {tag} is immutable"
        if protection is not None:
            self.keep("manifest", row.digest, None, why, protection)
            return True
        if tags:
            checks.append("its tags are neither held nor immutable")
        for t in self.tags_of[row.digest]:
            tag_why = _Expiry(why.rule, "follows-subject", why.detail, Conditions(subject=subject))
            self.delete("tag", row.digest, t.tag, tag_why, list(checks))
        if tags:
            why = _Expiry(
                why.rule, why.reason, why.detail,
                Conditions(
                    with_tags=tuple(sorted(tags)),
                    subject=subject,
                    untagged_before=why.conditions.untagged_before,
                ),
            )  # fmt: skip
        checks.append(f"not a referrer of a kept manifest (subject {subject} goes)")
        self.delete("manifest", row.digest, None, why, checks)
        return True

    def referrers(self) -> None:
        pending = sorted(
            (r for r in self.snap.manifests.values() if self.subject_of[r.digest] is not None),
            key=lambda r: (r.created_at, r.digest),
        )
        progress = True
        while pending and progress:
            progress = False
            undecided = []
            for row in pending:
                if self.referrer(row):
                    progress = True
                else:
                    undecided.append(row)
            pending = undecided


def evaluate(
    snap: Snapshot,
    policy: LifecyclePolicy,
    now: dt.datetime,
    immutable: Callable[[str, str], bool],
) -> Evaluation:
    """Decide one repository (see the module docstring); deletions come in apply order."""
    evaluator = _Evaluator(snap, policy, now, immutable)
    evaluator.tags()
    evaluator.manifests()
    evaluator.referrers()
    return evaluator.out
