"""``read_published(root, period, version=N)``: a superseded version under ``_versions/``,
verified like a month, on a local folder and on object storage (fsspec's memory store)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from vapi_chargeback.close.lifecycle import version_folder
from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, small_statement


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        yield UPath(tmp_path / "output")
        return
    bucket = UPath(f"memory://bucket/statements-{uuid.uuid4().hex}")
    yield bucket
    if bucket.exists():
        bucket.fs.rm(bucket.path, recursive=True)


def keep_as_version(root: Any, number: int, **fields: Any) -> Any:
    """Publish a set elsewhere and copy it whole, manifest last, to version ``number``'s folder."""
    staging = root / "_staging"
    publish_statement(small_statement(base="7.00"), staging)
    source = staging / PERIOD
    manifest = json.loads((source / "manifest.json").read_bytes())
    manifest.update(fields)
    target = root / version_folder(PERIOD, number)
    for relative in manifest["files"]:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes((source / relative).read_bytes())
    (target / "manifest.json").write_bytes(json.dumps(manifest).encode())
    return target


def test_a_kept_version_reads_back_verified_beside_the_current_month(root: Any) -> None:
    publish_statement(small_statement(), root)
    keep_as_version(root, 1, version=1, status="final")

    kept = read_published(root, PERIOD, version=1)
    current = read_published(root, PERIOD)

    assert kept is not None and current is not None
    assert kept["totals"]["cost_usd"] != current["totals"]["cost_usd"]
    assert kept["status"] == "final"
    assert read_published(root, PERIOD, version=2) is None, "no such version"


def test_a_kept_version_without_a_version_field_is_version_one(root: Any) -> None:
    keep_as_version(root, 1)
    assert read_published(root, PERIOD, version=1) is not None


def test_a_damaged_or_misfiled_version_reads_as_none(root: Any) -> None:
    damaged = keep_as_version(root, 1, version=1)
    misfiled = keep_as_version(root, 2, version=3)
    assert read_published(root, PERIOD, version=2) is None, "v2's folder holds v3's set"

    listed = next(iter(json.loads((damaged / "manifest.json").read_bytes())["files"]))
    (damaged / listed).write_bytes(b"edited")
    assert read_published(root, PERIOD, version=1) is None
    assert (misfiled / "manifest.json").exists()
