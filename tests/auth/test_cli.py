"""The project's own CLI and client against ``artifact-store serve --auth``.

push, pull, ls, show and events tail sign in with flags, environment
variables, an API token or a stored login; wrong or missing credentials end
with a clear message and status 2; no secret is ever printed or logged. The
commands run in-process (typer's runner) against a served process, so the
HTTP, the token flow and the server are real.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from typer.testing import CliRunner, Result

from bench.servers import artifact_store_command, free_port
from registry.auth import AuthStore
from registry.cli import app
from registry.cli.client import AuthError, NativeClient
from registry.cli.client_auth import Credentials, RegistryAuth
from registry.meta import MetadataStore

pytestmark = pytest.mark.clients

ALICE_PW = "alice-cli-pw-5e2a9"
ROOT_PW = "root-cli-pw-0c77d"
WRONG_PW = "not-the-right-pw-41b"


@dataclass
class Served:
    url: str
    log: Path
    robot_token: str

    @property
    def secrets(self) -> list[str]:
        return [ALICE_PW, ROOT_PW, WRONG_PW, self.robot_token]


async def _accounts(url: str) -> str:
    meta = await MetadataStore.open(url)  # migrates
    await meta.close()
    store = AuthStore.open(url)
    try:
        await store.add_user("alice", ALICE_PW, tenant="acme", roles=["maintainer"], actor="t")
        await store.add_user("root", ROOT_PW, roles=["admin"], actor="t")
        await store.add_user("ci", None, kind="robot", tenant="acme", roles=["writer"], actor="t")
        return await store.create_token("ci", actor="t")
    finally:
        await store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("auth-cli")
    data_dir = root / "data"
    data_dir.mkdir()
    token = anyio.run(_accounts, f"sqlite:///{data_dir}/meta.db")
    port = free_port()
    log = root / "server.log"
    env = {**os.environ, "ARTIFACT_STORE_LOG_LEVEL": "DEBUG"}
    argv = [*artifact_store_command(), "serve", "--auth", "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(data_dir)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            subprocess.run(["sleep", "0.1"], check=True)
        yield Served(f"http://127.0.0.1:{port}", log, token)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str | None]:
    """An environment with no credentials and a private config and cache directory."""
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "ARTIFACT_STORE_USERNAME": None,
        "ARTIFACT_STORE_PASSWORD": None,
        "ARTIFACT_STORE_TOKEN": None,
        "ARTIFACT_STORE_SERVER": None,
    }


def cli(served: Served, env: dict[str, str | None], *args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(app, [*args], env=env, input=stdin)
    for secret in served.secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr
    return result


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_push_pull_ls_show_events_with_credentials(
    served: Served, home: dict[str, str | None], tmp_path: Path
) -> None:
    src = tmp_path / "run"
    (src / "logs").mkdir(parents=True)
    (src / "logs" / "train.log").write_bytes(b"step 1\n")
    (src / "model.bin").write_bytes(os.urandom(600_000))  # above SMALL: HEAD, then one request
    s = ["--server", served.url]
    flags = ["--username", "alice", "--password", ALICE_PW]
    pushed = cli(served, home, "push", str(src), "acme/models:r1", *s, *flags)
    assert pushed.exit_code == 0, pushed.stderr
    digest = pushed.stdout.strip().splitlines()[-1]
    assert digest.startswith("sha256:")

    as_alice = {**home, "ARTIFACT_STORE_USERNAME": "alice", "ARTIFACT_STORE_PASSWORD": ALICE_PW}
    pulled = cli(served, as_alice, "pull", "acme/models:r1", str(tmp_path / "out"), *s)
    assert pulled.exit_code == 0, pulled.stderr
    assert _tree(tmp_path / "out") == _tree(src)
    listed = cli(served, as_alice, "ls", "acme/models", *s)
    assert listed.stdout.split("\t")[:2] == ["r1", digest]
    shown = cli(served, as_alice, "show", "acme/models:r1", *s)
    assert json.loads(shown.stdout)["digest"] == digest
    used = cli(served, as_alice, "usage", "acme", *s)
    assert used.exit_code == 0, used.stderr
    assert json.loads(used.stdout)["blob_bytes"] >= 600_000
    tailed = cli(served, as_alice, "events", "tail", "--repository", "acme/models",
                 "--type", "manifest.put", "--from-start", "--no-follow", "--json", *s)  # fmt: skip
    assert tailed.exit_code == 0, tailed.stderr
    assert [json.loads(line)["payload"]["digest"] for line in tailed.stdout.splitlines()] == [
        digest
    ]
    # The whole stream is a registry-wide admin's: alice is refused, root reads it.
    everything = cli(served, as_alice, "events", "tail", "--from-start", "--no-follow", *s)
    assert everything.exit_code == 2
    assert "DENIED" in everything.stderr
    as_root = {**home, "ARTIFACT_STORE_USERNAME": "root", "ARTIFACT_STORE_PASSWORD": ROOT_PW}
    admin = cli(served, as_root, "events", "tail", "--from-start", "--no-follow", "--json", *s)
    assert admin.exit_code == 0, admin.stderr
    assert digest in admin.stdout


def test_wrong_or_missing_credentials_fail_clearly(
    served: Served, home: dict[str, str | None], tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(b"a")
    s = ["--server", served.url]
    wrong = cli(served, home, "push", str(tmp_path / "src"), "acme/x:1", *s,
                "--username", "alice", "--password", WRONG_PW)  # fmt: skip
    assert wrong.exit_code == 2
    assert "authentication failed for alice" in wrong.stderr
    assert "invalid username or password" in wrong.stderr
    nobody = cli(served, home, "ls", "acme/x", *s)
    assert nobody.exit_code == 2
    assert "authentication required" in nobody.stderr
    assert "artifact-store login" in nobody.stderr
    half = cli(served, home, "show", "acme/x:1", *s, "--username", "alice")
    assert half.exit_code == 2
    assert "--username and --password go together" in half.stderr


def test_login_keeps_a_refresh_token_in_a_private_file_and_logout_forgets_it(
    served: Served, home: dict[str, str | None], tmp_path: Path
) -> None:
    refused = cli(served, home, "login", served.url, "-u", "alice", "--password-stdin",
                  stdin=WRONG_PW + "\n")  # fmt: skip
    assert refused.exit_code == 2
    assert "login failed for alice" in refused.stderr
    done = cli(served, home, "login", served.url, "-u", "alice", "--password-stdin",
               stdin=ALICE_PW + "\n")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    path = Path(str(home["XDG_CONFIG_HOME"])) / "artifact-store" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    entry = json.loads(path.read_text())["servers"][served.url]
    assert entry["username"] == "alice"
    assert "refresh_token" in entry
    assert ALICE_PW not in path.read_text()  # the password never reaches the disk

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"logged in")
    pushed = cli(served, home, "push", str(tmp_path / "src"), "acme/login:1",
                 "--server", served.url)  # fmt: skip
    assert pushed.exit_code == 0, pushed.stderr
    assert cli(served, home, "logout", served.url).exit_code == 0
    after = cli(served, home, "ls", "acme/login", "--server", served.url)
    assert after.exit_code == 2
    assert "authentication required" in after.stderr
    assert cli(served, home, "logout", served.url).exit_code == 2  # nothing left to forget


def test_an_api_token_pushes_alone(
    served: Served, home: dict[str, str | None], tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"from ci")
    env = {**home, "ARTIFACT_STORE_TOKEN": served.robot_token}
    pushed = cli(served, env, "push", str(tmp_path / "src"), "acme/ci:7", "--server", served.url)
    assert pushed.exit_code == 0, pushed.stderr
    foreign = cli(served, env, "push", str(tmp_path / "src"), "globex/ci:7",
                  "--server", served.url)  # fmt: skip
    assert foreign.exit_code == 2
    assert "DENIED" in foreign.stderr or "UNAUTHORIZED" in foreign.stderr


def test_tokens_are_cached_per_scope_and_fetched_again_on_expiry(
    served: Served, tmp_path: Path
) -> None:
    now = [1000.0]
    auth = RegistryAuth(Credentials("alice", ALICE_PW), clock=lambda: now[0])
    # NAME_UNKNOWN (404) once signed in: a 401 would mean the flow failed.
    with httpx.Client(base_url=served.url, auth=auth) as http:
        for _ in range(3):
            assert http.get("/api/v1/artifacts/acme/cached/versions").status_code == 404
        assert auth.fetches == 1  # one token, then the cache
        now[0] += 3600  # past the token's expiry (300 s)
        assert http.get("/api/v1/artifacts/acme/cached/versions").status_code == 404
        assert auth.fetches == 2
        assert http.get("/api/v1/artifacts/acme/other/versions").status_code == 404
        assert auth.fetches == 3  # another scope, another token
    wrong = NativeClient(served.url, credentials=Credentials("alice", WRONG_PW))
    with wrong, pytest.raises(AuthError, match="authentication failed for alice"):
        wrong.show("acme/models", "r1")


def test_secrets_never_reach_the_server_log(served: Served) -> None:
    # Runs last in this module: the log holds everything the tests above sent.
    text = served.log.read_text(errors="replace")
    assert "artifact-store serving" in text
    for secret in served.secrets:
        assert secret not in text
