"""Mutation testing of the critical modules, each against its own tests.

Run through ``scripts/mutation``. For each module of the table below:

1. copy the source packages, the tests and pyproject.toml into
   ``.mutation/<name>/`` (git-ignored) and append a ``[tool.mutmut]`` section
   that mutates that one file and selects that module's own test files;
2. run ``mutmut run`` there (mutmut copies the tree again into ``mutants/``,
   runs the selected tests once to learn which test reaches which function,
   then forks one process per mutant and runs only the tests that reach the
   mutated function; a mutant whose tests outlast 15x their clean duration is
   a timeout);
3. read the verdicts back (``mutmut results --all``), save them as
   ``.mutation/<name>.json`` and the diff of every mutant not killed as
   ``.mutation/<name>.survivors.diff``.

The table printed at the end covers every module with a saved verdict file,
so modules run one at a time still add up to one table. Score = killed
(timeouts and type-check kills included) over every mutant checked; a mutant
no selected test reaches ("no tests") counts against the score.

Why a copy per module: mutmut reads its configuration from pyproject.toml in
the working directory and keeps its state in ``mutants/`` there; one
directory per module lets each have its own test selection and keeps the
results of one module when another is run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
PACKAGES = ["oci", "storage", "registry", "conformance", "bench"]


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    tests: tuple[str, ...]
    meta: bool = False  # its tests are parametrised over SQLite and PostgreSQL


MODULES = [
    Module("digest", "oci/digest.py", ("tests/oci/test_digest.py",)),
    Module("reference", "oci/reference.py", ("tests/oci/test_reference.py",)),
    Module("manifest", "oci/manifest.py", ("tests/oci/test_manifest.py",)),
    Module(
        "upload",
        "registry/service/upload.py",
        (
            "tests/http/test_upload_rules.py",
            "tests/http/test_uploads.py",
            "tests/http/test_bad_input.py",
        ),
    ),
    Module(
        "ranges",
        "registry/http/ranges.py",
        ("tests/http/test_blobs.py", "tests/http/test_bad_input.py"),
    ),
    Module(
        "auth-scope",
        "registry/auth/scope.py",
        ("tests/auth/test_scope.py", "tests/auth/test_denials.py"),
        meta=True,
    ),
    Module(
        "auth-policy",
        "registry/auth/policy.py",
        ("tests/auth/test_policy.py", "tests/auth/test_denials.py"),
        meta=True,
    ),
    Module(
        "protection",
        "registry/rules/protection.py",
        (
            "tests/lifecycle/test_immutable.py",
            "tests/lifecycle/test_holds.py",
            "tests/lifecycle/test_holds_lifecycle.py",
        ),
        meta=True,
    ),
    Module("holds", "registry/lifecycle/holds.py", ("tests/lifecycle/test_holds.py",), meta=True),
    Module(
        "fs-writer",
        "storage/_fs_writer.py",
        ("tests/storage/test_filesystem.py", "tests/storage/test_crash.py"),
    ),
    Module(
        "gc-sweep",
        "registry/lifecycle/_gc_sweep.py",
        ("tests/lifecycle/test_gc.py", "tests/lifecycle/test_gc_races.py"),
        meta=True,
    ),
]
BY_NAME = {m.name: m for m in MODULES}

KILLED = {"killed", "timeout", "caught by type check"}
COLUMNS = ["killed", "timeout", "survived", "no tests", "suspicious", "skipped", "not checked"]


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(module: Module, postgres: bool) -> Path:
    workdir = WORK / module.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in [*PACKAGES, "tests"]:
        shutil.copytree(ROOT / package, workdir / package, ignore=ignore)
    shutil.copy2(ROOT / "conftest.py", workdir / "conftest.py")
    top = module.source.split("/")[0]
    pytest_args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-p", "no:randomly"]
    if module.meta and not postgres:
        pytest_args += ["-m", "not postgres"]
    section = f"""
[tool.mutmut]
source_paths = {toml_list([top + "/"])}
only_mutate = {toml_list([module.source])}
also_copy = {toml_list(["conftest.py", *(p + "/" for p in PACKAGES if p != top)])}
pytest_add_cli_args = {toml_list(pytest_args)}
pytest_add_cli_args_test_selection = {toml_list(list(module.tests))}
"""
    text = (ROOT / "pyproject.toml").read_text()
    (workdir / "pyproject.toml").write_text(text + section)
    return workdir


# `mutmut show NAME` for many names in one process (each start takes seconds)
SHOW = """
import sys
from mutmut.__main__ import find_mutant, get_diff_for_mutant, status_by_exit_code
for name in sys.argv[1:]:
    m = find_mutant(name)
    print(f"# {name}: {status_by_exit_code[m.exit_code_by_key[name]]}")
    print(get_diff_for_mutant(name, path=m.path).rstrip() + "\\n")
"""


def mutmut(workdir: Path, *args: str, log: Path | None = None) -> str:
    env = dict(os.environ)
    # skips are allowed here: PostgreSQL-only cases may be deselected
    env.pop("ARTIFACT_STORE_REQUIRE_ALL_TESTS", None)
    if args[0] == "show":
        command = [sys.executable, "-c", SHOW, *args[1:]]
    else:
        command = [sys.executable, "-m", "mutmut", *args]
    if log is None:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"mutmut {' '.join(args)} failed in {workdir}:\n{done.stderr}")
        return done.stdout
    with log.open("w") as out:
        logged = subprocess.run(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    if logged.returncode != 0:
        sys.exit(f"mutmut {' '.join(args)} failed in {workdir}: see {log}")
    return ""


def run(module: Module, workers: int, postgres: bool) -> None:
    print(f"== {module.name}: {module.source} against {' '.join(module.tests)}", flush=True)
    started = time.monotonic()
    workdir = prepare(module, postgres)
    mutmut(workdir, "run", "--max-children", str(workers), log=WORK / f"{module.name}.log")
    collect(module, postgres, round(time.monotonic() - started))


def collect(module: Module, postgres: bool, seconds: int | None) -> None:
    """Save the verdicts of the run in .mutation/<name>/, finished or interrupted."""
    workdir = WORK / module.name
    verdicts: dict[str, str] = {}
    for line in mutmut(workdir, "results", "--all", "true").splitlines():
        found = re.match(r"\s*(\S+): (.+)$", line)
        if found:
            verdicts[found[1]] = found[2].strip()
    survivors = sorted(name for name, status in verdicts.items() if status not in KILLED)
    diffs = mutmut(workdir, "show", *survivors) if survivors else ""
    (WORK / f"{module.name}.survivors.diff").write_text(diffs)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    saved = WORK / f"{module.name}.json"
    if seconds is None and saved.exists():  # keep the duration of the run collected again
        seconds = json.loads(saved.read_text())["seconds"]
    record = {
        "module": module.source,
        "tests": list(module.tests),
        "postgres": postgres or not module.meta,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": seconds,
        "verdicts": verdicts,
    }
    saved.write_text(json.dumps(record, indent=1, sort_keys=True))


def table() -> None:
    header = ["module", "mutants", *COLUMNS, "score"]
    rows = []
    for module in MODULES:
        saved = WORK / f"{module.name}.json"
        if not saved.exists():
            continue
        verdicts = json.loads(saved.read_text())["verdicts"]
        counts = {c: 0 for c in COLUMNS}
        for status in verdicts.values():
            key = "killed" if status == "caught by type check" else status
            counts[key if key in counts else "suspicious"] += 1
        checked = len(verdicts) - counts["skipped"] - counts["not checked"]
        killed = counts["killed"] + counts["timeout"]
        score = f"{100 * killed / checked:.1f}%" if checked else "-"
        rows.append([module.source, str(len(verdicts)), *map(str, counts.values()), score])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f"\nsurvivors' diffs: {WORK.relative_to(ROOT)}/<module>.survivors.diff")


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module names (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--table", action="store_true", help="only print the saved scores")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="save the verdicts of an interrupted run (mutants not reached: 'not checked')",
    )
    parser.add_argument("--workers", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also run the metadata tests' PostgreSQL cases (default: SQLite only)",
    )
    args = parser.parse_args()
    if args.list:
        for m in MODULES:
            print(f"{m.name:12} {m.source:32} {' '.join(m.tests)}")
        return
    unknown = [n for n in args.modules if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; see --list")
    if args.collect:
        for name in args.modules:
            collect(BY_NAME[name], args.postgres, None)
    elif not args.table:
        WORK.mkdir(exist_ok=True)
        for name in args.modules or list(BY_NAME):
            run(BY_NAME[name], args.workers, args.postgres)
    table()


if __name__ == "__main__":
    main()
