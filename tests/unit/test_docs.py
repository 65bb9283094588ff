"""The documentation site builds strictly, and its configuration reference covers every field.

CI runs ``make docs`` (``mkdocs build --strict``); these tests build the site the same way
into a temporary folder, so a broken link or anchor fails the suite too. The reference page
is generated from the live pydantic models, and the fields it must list are found here by a
walk of those models of our own, not the generator's, so a generator that skipped a nested
model would be caught. README stays a short entry point whose links into docs/ resolve.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.docs_reference import NotesError, read_notes, render_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTES = DOCS / "hooks" / "config_notes.md"
README = ROOT / "README.md"
README_MAX_LINES = 150
BUILD_TIMEOUT_S = 300


def _build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``project`` as ``make docs`` runs it (the core importable)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "include"), env.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(DOCS, project / "docs")
    return project


def _model_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field path of ``model``, walking list items (``[]``) and map values (``<key>``)."""
    paths = []
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        paths.append(path)
        for suffix, child in _models_in(info.annotation):
            paths += _model_paths(child, f"{path}{suffix}.")
    return paths


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list:
        return [("[]" + s, m) for a in args for s, m in _models_in(a)]
    if origin is dict:
        return [(".<key>" + s, m) for s, m in _models_in(args[1])]
    if origin in (Union, types.UnionType) or args:
        return [found for a in args for found in _models_in(a)]
    return []


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = _build(ROOT, site)
    assert result.returncode == 0, (
        f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    )
    return site


def test_the_site_builds_strictly_with_every_page(built_site: Path) -> None:
    pages = sorted(
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts
    )
    built = {p.relative_to(built_site).as_posix() for p in built_site.rglob("index.html")}
    for page in pages:
        expected = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        assert expected in built, f"docs/{page} was not built"
    assert "reference/configuration/index.html" in built


def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    page = project / "docs" / "index.md"
    broken = "\n[gone](no-such-page.md) [moved](output.md#no-such-heading)\n"
    page.write_text(page.read_text(encoding="utf-8") + broken, encoding="utf-8")
    result = _build(project, tmp_path / "site")
    assert result.returncode != 0
    report = result.stdout + result.stderr
    assert "no-such-page.md" in report and "#no-such-heading" in report
    assert "in strict mode" in report


def test_the_reference_lists_every_config_field(built_site: Path) -> None:
    paths = _model_paths(ChargebackConfig)
    assert len(paths) > 60, "the walk found hardly any field: has it stopped recursing?"
    assert "cost_centers[].queries[].metrics" in paths and "budgets.<key>.amount_usd" in paths
    page = render_reference(NOTES.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{2,3} `([^`]+)`", page, re.M)
    assert sorted(set(paths) - set(headings)) == []
    html = (built_site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    missing = [path for path in paths if path.replace("<", "&lt;").replace(">", "&gt;") not in html]
    assert missing == [], f"fields absent from the built reference page: {missing}"


def test_the_reference_shows_each_fields_docstring_and_default() -> None:
    page = render_reference()
    section = page.split("### `shared_costs[].amount`")[1].split("\n### ")[0]
    assert "not\nin cents: `100000` is 100,000.00 USD" in section
    section = page.split("## `approval_timeout_days`")[1].split("\n## ")[0]
    assert "integer 1–90" in section and "default `7`" in section
    assert "How long the review step waits" in section


def test_every_note_names_a_field() -> None:
    _, notes = read_notes(NOTES.read_text(encoding="utf-8"))
    assert set(notes) <= set(_model_paths(ChargebackConfig))
    with pytest.raises(NotesError, match="no_such_field"):
        render_reference("Intro.\n\n## `no_such_field`\n\nA note about nothing.\n")


def test_readme_is_short_and_its_links_into_docs_exist() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", text)
    assert len(links) >= 8, "README links hardly any page of docs/"
    for target, anchor in links:
        page = ROOT / target
        assert page.is_file(), f"README links {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"README links {target}#{anchor}, which has no such heading"
