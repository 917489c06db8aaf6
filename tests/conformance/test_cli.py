"""``python -m conformance``: exit codes, JSON output, and the envelope judge it relies on."""

from __future__ import annotations

import json

import pytest

from conformance import CATEGORIES, select
from conformance.__main__ import main
from conformance.context import envelope_problem


@pytest.mark.clients
def test_exit_zero_when_nothing_fails(
    distribution_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", distribution_url, "--only", "pull", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert {r["category"] for r in results} == {"pull"}
    assert {r["status"] for r in results} == {"pass"}
    assert all(r["spec"].startswith("https://github.com/opencontainers/") for r in results)


@pytest.mark.clients
def test_exit_one_and_a_table_when_a_check_fails(
    distribution_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # distribution 2.8.2 accepts out-of-order chunks (docs/conformance.md).
    assert main(["--url", distribution_url, "--check", "blob_chunk_out_of_order"]) == 1
    out = capsys.readouterr().out
    assert "blob_chunk_out_of_order" in out
    assert "expected 416" in out
    assert "0 pass, 1 fail" in out


def test_unknown_check_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:9", "--check", "no_such_check"]) == 2
    assert "no_such_check" in capsys.readouterr().err


def test_every_category_has_checks_in_run_order() -> None:
    chosen = select()
    assert {c.category for c in chosen} == set(CATEGORIES)
    order = [CATEGORIES.index(c.category) for c in chosen]
    assert order == sorted(order)
    assert chosen[-1].name == "error_bodies"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}', None),
        (b'{"errors":[{"code":"TAG_INVALID","message":""}]}', None),
        (b"404 page not found", "not JSON"),
        (b'{"errors":[]}', "no non-empty"),
        (b'{"error":"nope"}', "no non-empty"),
        (b'{"errors":[{"message":"no code"}]}', "without a string code"),
        (b'{"errors":[{"code":"NOT_A_SPEC_CODE"}]}', "not one of the spec's codes"),
        (b'{"errors":[{"code":"DENIED","message":7}]}', "message is not a string"),
    ],
)
def test_envelope_judge(body: bytes, problem: str | None) -> None:
    found = envelope_problem(body)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
