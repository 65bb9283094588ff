"""What README.md and the documentation site point at exists: files, test names, make targets.

The docs map every promise to the test that proves it and tell readers which file and
which make target to use; a rename that forgets them would leave them pointing at nothing.
Checked: backticked repository paths (``include/…``, ``tests/…`` …, except under a folder
.gitignore lists, which hold generated output), ``file.py::test_name`` references (a bare
file name is looked up under tests/, ``…::name`` continues the file named just before),
bare ``*.py`` module names, and every ``make <target>`` (backticked, or a code line).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"
ROOT_FILES = ("Makefile", "Dockerfile", "docker-compose.yml", "pyproject.toml", ".env.example")
REPO_PATH = re.compile(
    r"(?:\.ci|bench|dags|include|plugins|requirements|tests)/[\w./-]*|" + "|".join(ROOT_FILES)
)
TEST_REFERENCE = re.compile(r"((?:[\w./-]|…/)*?\.py|…)::([\w*]+)(?:\[[^\]]*\])?")
MODULE_NAME = re.compile(r"[a-z_]\w*\.py")
MAKE_COMMAND = re.compile(r"make ([a-z][\w-]*)")


def _documents() -> list[Path]:
    """README, then every page of the site and the configuration notes, in a stable order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def _spans() -> list[str]:
    """Backticked spans outside fenced code blocks, document by document in reading order."""
    spans: list[str] = []
    for document in _documents():
        prose = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
        spans += re.findall(r"`([^`\n]+)`", prose)
    return spans


def _ignored_folders() -> tuple[str, ...]:
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip().endswith("/"))


def _test_file(name: str) -> Path | None:
    """``tests/x/test_a.py`` as given, or a bare or ``…/``-prefixed name found once under tests/."""
    if name.startswith("tests/"):
        path = ROOT / name
        return path if path.is_file() else None
    found = sorted(TESTS.rglob(name.removeprefix("…/")))
    return found[0] if len(found) == 1 else None


def test_every_repository_path_readme_names_exists() -> None:
    ignored = _ignored_folders()
    named = {span.split("::")[0] for span in _spans() if REPO_PATH.fullmatch(span.split("::")[0])}
    missing = sorted(
        path for path in named if not path.startswith(ignored) and not (ROOT / path).exists()
    )
    assert named, "README names no repository path: has the pattern stopped matching?"
    assert missing == [], f"README.md names paths that do not exist: {missing}"


def test_every_module_readme_names_exists_somewhere() -> None:
    modules = {span for span in _spans() if MODULE_NAME.fullmatch(span)}
    present = {
        path.name
        for folder in ("include", "tests", "bench", "dags", "plugins")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert sorted(modules - present) == [], "README.md names modules that do not exist"


def test_every_test_readme_names_exists() -> None:
    problems: list[str] = []
    checked = 0
    current: Path | None = None
    for span in _spans():
        for file_name, test_name in TEST_REFERENCE.findall(span):
            if file_name != "…":
                current = _test_file(file_name)
                if current is None:
                    problems.append(f"{file_name}: no such test file (or not one under tests/)")
                    continue
            if current is None:
                problems.append(f"…::{test_name}: no file named before it")
                continue
            defined = re.findall(r"^(?:async )?def (test_\w+)\(", current.read_text(), re.M)
            if not fnmatch.filter(defined, test_name):
                problems.append(f"{current.relative_to(ROOT)}::{test_name}: no such test")
            checked += 1
    assert checked > 10, "README names hardly any test: has the pattern stopped matching?"
    assert problems == [], "README.md names tests that do not exist:\n" + "\n".join(problems)


def test_every_make_target_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    text = "\n".join(document.read_text(encoding="utf-8") for document in _documents())
    commands = [*_spans(), *re.findall(r"^(make .*)$", text, re.M)]
    named = {match.group(1) for command in commands if (match := MAKE_COMMAND.match(command))}
    assert {"demo", "test", "test-fast", "docs"} <= named, (
        "the docs must name make demo, test, test-fast, docs"
    )
    assert sorted(named - targets) == [], "README.md names make targets the Makefile lacks"


@pytest.mark.parametrize(
    ("span", "file_name", "test_name"),
    [
        pytest.param("tests/unit/a.py::test_b", "tests/unit/a.py", "test_b", id="full-path"),
        pytest.param("test_a.py::test_b[x-1]", "test_a.py", "test_b", id="bare-with-param-id"),
        pytest.param("…::test_b", "…", "test_b", id="continuation"),
        pytest.param("x.py::test_refuses_*", "x.py", "test_refuses_*", id="wildcard"),
    ],
)
def test_references_are_read_the_way_readme_writes_them(
    span: str, file_name: str, test_name: str
) -> None:
    assert TEST_REFERENCE.findall(span) == [(file_name, test_name)]
