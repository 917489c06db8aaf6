"""``artifact-store hold …`` and ``retention extend`` against a served process.

The server is a real ``artifact-store serve`` process; the commands run
in-process through Typer's runner (a fresh interpreter per command costs
seconds of imports), except one run through the console entry point.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from registry.cli import app as cli_app
from registry.cli.holds import parse_target
from registry.cli.retention import parse_until
from tests.http._serve import free_port, run_cli, serving

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


def cli(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli_app, list(args), env=env, input=stdin)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("holds-cli")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / "data")]
    with serving(args, url, workdir):
        yield url


def _push_image(server: str, repo: str, tag: str) -> str:
    """A config, one random layer and the manifest, over /v2/; returns the manifest digest."""
    with httpx.Client(base_url=server) as http:
        descriptors = []
        for data in (b"{}", secrets.token_bytes(512)):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            r = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
            assert r.status_code == 201, r.text
            descriptors.append({"digest": digest, "size": len(data)})
        config, layer = descriptors
        media_type = "application/vnd.oci.image.manifest.v1+json"
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }
        body = json.dumps(manifest).encode()
        r = http.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": media_type}
        )
        assert r.status_code == 201, r.text
        return "sha256:" + hashlib.sha256(body).hexdigest()


def _delete(server: str, path: str) -> int:
    return httpx.delete(f"{server}{path}").status_code


def test_place_list_and_release_holds_from_the_command_line(server: str) -> None:
    digest = _push_image(server, "cli/app", "v1")
    # Once through the console script, exactly as a user runs it.
    placed = run_cli(["hold", "place", "cli/app:v1", "--reason", "case 7", "--server", server])
    assert placed.returncode == 0, placed.stderr
    hold_id = placed.stdout.strip()
    assert len(hold_id) == 32
    assert "held cli/app:v1" in placed.stderr
    assert _delete(server, f"/v2/cli/app/manifests/{digest}") == 403

    listed = cli("hold", "ls", "cli/app", "--json", "--server", server)
    assert listed.exit_code == 0, listed.output
    [hold] = json.loads(listed.stdout)
    assert (hold["id"], hold["tag"], hold["digest"], hold["reason"]) == (
        hold_id,
        "v1",
        digest,
        "case 7",
    )

    second = json.loads(
        cli("hold", "place", f"cli/app@{digest}", "--reason", "case 8", "--json", "--server",
            server).stdout
    )  # fmt: skip
    assert (second["digest"], second["tag"]) == (digest, None)
    whole = cli("hold", "place", "cli/app", "--reason", "case 9", "--server", server)
    assert whole.exit_code == 0, whole.output
    assert "whole repository" in whole.stderr
    table = cli("hold", "ls", "--server", server, env={"COLUMNS": "200"})
    assert table.exit_code == 0
    for expected in (hold_id, second["id"], whole.stdout.strip(), "case 7", "everything"):
        assert expected in table.stdout

    for released in (hold_id, second["id"], whole.stdout.strip()):
        done = cli("hold", "release", released, "--reason", "closed", "--repository", "cli/app",
                   "--server", server)  # fmt: skip
        assert done.exit_code == 0, done.output
        assert f"released {released}" in done.stdout
    assert json.loads(cli("hold", "ls", "--json", "--server", server).stdout) == []
    assert "No active holds" in cli("hold", "ls", "--server", server).stdout
    assert _delete(server, f"/v2/cli/app/manifests/{digest}") == 202


def test_refusals_and_bad_arguments_exit_non_zero_with_the_reason(server: str) -> None:
    unknown = cli("hold", "place", "cli/none", "--reason", "x", "--server", server)
    assert unknown.exit_code == 1
    assert "NAME_UNKNOWN" in unknown.stderr
    bad = cli("hold", "place", "Not Valid", "--reason", "x", "--server", server)
    assert bad.exit_code == 2
    assert "invalid repository name" in bad.stderr
    missing = cli("hold", "release", "0" * 32, "--reason", "x", "--server", server)
    assert missing.exit_code == 1
    assert "MANIFEST_UNKNOWN" in missing.stderr
    down = cli("hold", "ls", "--server", f"http://127.0.0.1:{free_port()}")
    assert down.exit_code == 2
    assert "cannot reach" in down.stderr


def test_retention_extend_moves_the_date_later_only(server: str) -> None:
    digest = _push_image(server, "cli/keep", "1.0")
    base = ["retention", "extend", "cli/keep:1.0", "--server", server]
    first = cli(*base, "--for", "90d", "--json")
    assert first.exit_code == 0, first.output
    kept = json.loads(first.stdout)
    until = dt.datetime.fromisoformat(kept["until"])
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    assert abs(until - expected) < dt.timedelta(minutes=5)
    assert kept["digest"] == digest

    shorter = cli(*base, "--until", (until - dt.timedelta(days=1)).date().isoformat())
    assert shorter.exit_code == 1
    assert "DENIED" in shorter.stderr
    assert "can only be extended" in shorter.stderr

    later = cli("retention", "extend", f"cli/keep@{digest}", "--until", "2099-12-31",
                "--server", server)  # fmt: skip
    assert later.exit_code == 0, later.output
    assert "kept until 2099-12-31T00:00:00Z" in later.stdout

    for flags in ([], ["--for", "90d", "--until", "2099-01-01"], ["--for", "soon"]):
        wrong = cli(*base, *flags)
        assert wrong.exit_code == 2, flags
        assert "--for" in wrong.stderr
    no_version = cli("retention", "extend", "cli/keep", "--for", "1d", "--server", server)
    assert no_version.exit_code == 2
    assert "NAME:VERSION" in no_version.stderr

    with httpx.Client(base_url=server) as http:
        events = http.get("/api/v1/events", params={"repository": "cli/keep"}).json()["events"]
    assert [e["type"] for e in events].count("retention.extended") == 2


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served process with auth on: ``root`` (registry admin) and ``alice`` (maintainer)."""
    workdir = tmp_path_factory.mktemp("holds-cli-auth")
    data = str(workdir / "data")
    for name, flags in (("root", ["--role", "admin"]), ("alice", ["--role", "maintainer"])):
        made = cli("admin", "user", "add", name, *flags, "--password-stdin", "--data-dir", data,
                   stdin=f"{name}-password\n")  # fmt: skip
        assert made.exit_code == 0, made.output
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(["--listen", f"127.0.0.1:{port}", "--data-dir", data, "--auth"], url, workdir):
        yield url


def test_with_auth_on_the_commands_sign_in_as_push_and_pull_do(
    auth_server: str, tmp_path: Path
) -> None:
    # No stored login from elsewhere may leak in: a fresh config directory.
    clean = {"XDG_CONFIG_HOME": str(tmp_path), "ARTIFACT_STORE_TOKEN": None}
    root = {**clean, "ARTIFACT_STORE_USERNAME": "root", "ARTIFACT_STORE_PASSWORD": "root-password"}
    with httpx.Client(base_url=auth_server, auth=("root", "root-password")) as http:
        r = http.post("/v2/held/app/blobs/uploads/", params={"digest": EMPTY}, content=b"")
        assert r.status_code == 201, r.text
    ls = ["hold", "ls", "--json", "--server", auth_server]

    anonymous = cli(*ls, env=clean)
    assert anonymous.exit_code == 1
    assert "authentication required" in anonymous.stderr
    alone = cli(*ls, "--username", "root", env={**clean, "ARTIFACT_STORE_PASSWORD": None})
    assert alone.exit_code == 2
    assert "--password" in alone.stderr
    alice = {
        **clean,
        "ARTIFACT_STORE_USERNAME": "alice",
        "ARTIFACT_STORE_PASSWORD": "alice-password",
    }
    maintainer = cli("hold", "place", "held/app", "--reason", "r", "--server", auth_server,
                     env=alice)  # fmt: skip
    assert maintainer.exit_code == 1
    assert "DENIED" in maintainer.stderr

    # A registry admin: a token scoped to the repository for place, its own
    # credentials for the registry-wide listing.
    placed = cli("hold", "place", "held/app", "--reason", "r", "--server", auth_server, env=root)
    assert placed.exit_code == 0, placed.output
    listed = cli(*ls, "--username", "root", "--password", "root-password", env=clean)
    assert listed.exit_code == 0, listed.output
    assert [hold["id"] for hold in json.loads(listed.stdout)] == [placed.stdout.strip()]


# -- argument parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("team/app", ("team/app", None)),
        ("team/app:v1.2", ("team/app", "v1.2")),
        ("team/app@sha256:" + "a" * 64, ("team/app", "sha256:" + "a" * 64)),
    ],
)
def test_targets_name_a_repository_a_tag_or_a_digest(
    value: str, expected: tuple[str, str | None]
) -> None:
    assert parse_target(value) == expected


@pytest.mark.parametrize(
    ("until", "keep_for", "expected"),
    [
        ("2031-02-03", None, dt.datetime(2031, 2, 3, tzinfo=dt.UTC)),
        ("2031-02-03T04:05:06+02:00", None, dt.datetime(2031, 2, 3, 2, 5, 6, tzinfo=dt.UTC)),
        ("2031-02-03T04:05:06Z", None, dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC)),
        (None, "36h", NOW + dt.timedelta(hours=36)),
        (None, "90d", NOW + dt.timedelta(days=90)),
        (None, "2w", NOW + dt.timedelta(weeks=2)),
        (None, "1y", NOW + dt.timedelta(days=365)),
    ],
)
def test_until_is_a_date_a_time_or_a_duration_from_now(
    until: str | None, keep_for: str | None, expected: dt.datetime
) -> None:
    assert parse_until(until, keep_for, NOW) == expected


@pytest.mark.parametrize(
    ("until", "keep_for"),
    [(None, None), ("2031-01-01", "1d"), ("2031-01-01T00:00:00", None), ("soon", None),
     (None, "1 day"), (None, "-1d")],
)  # fmt: skip
def test_bad_dates_and_durations_are_refused(until: str | None, keep_for: str | None) -> None:
    with pytest.raises(ValueError, match="--until|--for"):
        parse_until(until, keep_for, NOW)
