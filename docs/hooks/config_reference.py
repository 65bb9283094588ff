"""MkDocs hook: builds reference/configuration.md from the live pydantic models at build time.

Generated on every build rather than committed, so the page cannot fall behind a field
added to the config; the notes beside this file add the prose that does not fit a docstring
(``vapi_chargeback.docs_reference`` explains the split).
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from vapi_chargeback.docs_reference import render_reference

NOTES = Path(__file__).with_name("config_notes.md")
PAGE = "reference/configuration.md"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated page to the site, as if it were a file under docs/."""
    content = render_reference(NOTES.read_text(encoding="utf-8"))
    files.append(File.generated(config, PAGE, content=content))
    return files
