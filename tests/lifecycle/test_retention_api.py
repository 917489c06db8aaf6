"""The retention API (/api/v1/retention/plan|apply) and the CLI (retention plan|apply)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.config import Settings
from registry.http.app import create_app
from registry.lifecycle.retention import RetentionPlan
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.auth.conftest import AuthServed, authed, extra_settings
from tests.http._oci import error_code
from tests.lifecycle._world import World
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["authed", "extra_settings", "make_url"]  # fixtures used here

RULES = '[[retention.rules]]\nname = "ci"\nrepository = "team/**"\nkeep_last = 1\n'
REPO = "team/app"


class Served:
    def __init__(self, client: httpx.AsyncClient, world: World) -> None:
        self.client = client
        self.world = world


@pytest.fixture
async def served(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[Served]:
    meta = await MetadataStore.open(make_url())
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    world = World(registry)
    world.configure(RULES)
    app = create_app(registry.settings, registry)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registry.test"
        ) as client:
            yield Served(client, world)
    finally:
        await meta.close()


async def _three_tags(world: World) -> None:
    for tag in ("a", "b", "c"):
        await world.push(REPO, tag)
    await world.push("team/other", "x")


async def _plan(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/api/v1/retention/plan", params=params)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.anyio
async def test_get_plan_explains_each_deletion(served: Served) -> None:
    await _three_tags(served.world)
    document = await _plan(served.client, repository=REPO)
    assert document["repository"] == REPO
    assert document["digest"].startswith("sha256:")
    tags = [(d["tag"], d["rule"], d["reason"]) for d in document["deletions"] if d["tag"]]
    assert tags == [("b", "ci", "keep-last"), ("a", "ci", "keep-last")]
    assert all(d["unprotected"] for d in document["deletions"])
    assert document["kept"] == []
    response = await served.client.get("/api/v1/retention/plan", params={"repository": "Bad"})
    assert response.status_code == 400
    assert error_code(response) == "NAME_INVALID"


@pytest.mark.anyio
async def test_apply_a_reviewed_plan_exactly(served: Served) -> None:
    world = served.world
    await _three_tags(world)
    reviewed = await _plan(served.client, repository=REPO)
    # After review: "b" is put under a legal hold (no longer eligible at the plan's time) and a
    # new tag pushes "c" past keep_last (eligible now, but not part of the reviewed plan).
    await world.writes.place_hold(REPO, "b", "audit", actor="legal")
    await world.push(REPO, "d")
    response = await served.client.post("/api/v1/retention/apply", json={"plan": reviewed})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["plan"] == reviewed["digest"]
    assert [(d["kind"], d["tag"]) for d in report["deleted"]] == [("tag", "a"), ("manifest", None)]
    skipped = {(s["kind"], s["tag"]): s["skipped"] for s in report["skipped"]}
    assert skipped == {
        ("tag", "b"): "no longer eligible at the plan's time",
        ("manifest", None): "no longer eligible at the plan's time",
    }
    assert await world.tags(REPO) == ["b", "c", "d"]


@pytest.mark.anyio
async def test_a_tampered_plan_is_refused(served: Served) -> None:
    await _three_tags(served.world)
    reviewed = await _plan(served.client)
    tampered = copy.deepcopy(reviewed)
    tampered["deletions"].append({**tampered["deletions"][0], "tag": "c"})
    head = await served.world.head()
    response = await served.client.post("/api/v1/retention/apply", json={"plan": tampered})
    assert response.status_code == 409
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["detail"]["reason"] == "plan-changed"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    future = RetentionPlan(later, None, (), ()).to_json()  # consistent, but not yet due
    response = await served.client.post("/api/v1/retention/apply", json={"plan": future})
    assert response.status_code == 400
    assert "in the future" in response.json()["errors"][0]["message"]
    for body in (b"[1]", b"not json", json.dumps({"plan": {"now": 1}}).encode()):
        response = await served.client.post("/api/v1/retention/apply", content=body)
        assert response.status_code == 400, body
    assert await served.world.head() == head


@pytest.mark.anyio
async def test_dry_run_and_a_fresh_plan(served: Served) -> None:
    world = served.world
    await _three_tags(world)
    head = await world.head()
    response = await served.client.post("/api/v1/retention/apply", json={"dry_run": True})
    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert len(response.json()["deleted"]) == 4
    assert await world.head() == head
    response = await served.client.post("/api/v1/retention/apply")
    assert response.status_code == 200
    assert len(response.json()["deleted"]) == 4
    assert await world.tags(REPO) == ["c"]


@pytest.mark.anyio
async def test_retention_endpoints_are_for_registry_admins(authed: AuthServed) -> None:
    World(authed.registry).configure(RULES)
    anonymous, alice, root = authed.client(), authed.as_user("alice"), authed.as_user("root")
    assert (await anonymous.get("/api/v1/retention/plan")).status_code == 401
    assert (await alice.get("/api/v1/retention/plan")).status_code == 403
    assert (await alice.post("/api/v1/retention/apply")).status_code == 403
    assert (await root.get("/api/v1/retention/plan")).status_code == 200
    assert (await root.post("/api/v1/retention/apply", json={"dry_run": True})).status_code == 200


# -- the command line ----------------------------------------------------------


def _populate(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)

    async def go() -> None:
        meta = await MetadataStore.open(f"sqlite:///{data / 'meta.db'}")
        try:
            world = World(Registry(meta, FsBlobStore(data / "blobs"), Settings()))
            for tag in ("a", "b", "c"):
                await world.push(REPO, tag)
        finally:
            await meta.close()

    anyio.run(go)


def _tags(data: Path) -> list[str]:
    async def go() -> list[str]:
        meta = await MetadataStore.open(f"sqlite:///{data / 'meta.db'}")
        try:
            return await meta.list_tags(REPO, None, None)
        finally:
            await meta.close()

    return anyio.run(go)


def test_cli_plan_and_apply(tmp_path: Path) -> None:
    data, config = tmp_path / "data", tmp_path / "rules.toml"
    config.write_text(RULES)
    _populate(data)
    flags = ["--data-dir", str(data), "--config", str(config)]
    runner = CliRunner()

    result = runner.invoke(cli_app, ["retention", "plan", "--json", *flags])
    assert result.exit_code == 0, result.output
    assert [d["tag"] for d in json.loads(result.output)["deletions"] if d["tag"]] == ["b", "a"]

    result = runner.invoke(cli_app, ["retention", "plan", *flags])
    assert result.exit_code == 0, result.output
    assert "2 tag(s) and 2 manifest(s) eligible" in result.output
    assert "keep_last=1" in result.output

    result = runner.invoke(cli_app, ["retention", "apply", "--dry-run", *flags])
    assert result.exit_code == 0, result.output
    assert "4 would delete, 0 skipped" in result.output
    assert _tags(data) == ["a", "b", "c"]

    result = runner.invoke(cli_app, ["retention", "apply", *flags], input="n\n")
    assert result.exit_code == 1
    assert _tags(data) == ["a", "b", "c"]

    result = runner.invoke(cli_app, ["retention", "apply", "--yes", *flags])
    assert result.exit_code == 0, result.output
    assert "4 deleted, 0 skipped" in result.output
    assert _tags(data) == ["c"]


def test_cli_reports_a_bad_rule_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "rules.toml"
    config.write_text('[[retention.rules]]\nname = "r"\nrepository = "a/**"\nkeep_last = "x"\n')
    result = CliRunner().invoke(
        cli_app, ["retention", "plan", "--data-dir", str(tmp_path), "--config", str(config)]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "retention rule 'r': keep_last must be a non-negative integer" in lines[0]
