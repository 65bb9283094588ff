"""Publishing to object storage, through fsspec's in-memory filesystem (no rename there)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem
from upath import UPath

from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, small_statement


@pytest.fixture
def bucket() -> Iterator[UPath]:
    root = UPath(f"memory://bucket/statements-{uuid.uuid4().hex}")
    yield root
    if root.exists():
        root.fs.rm(root.path, recursive=True)


def _uploads(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[str]:
    uploaded: list[str] = []
    original = MemoryFileSystem.put_file

    def put_file(self: MemoryFileSystem, local: str, remote: str, *args: Any, **kwargs: Any) -> Any:
        if fail_at is not None and len(uploaded) + 1 == fail_at:
            raise ConnectionError("connection reset")
        uploaded.append(remote.rsplit(f"/{PERIOD}/", 1)[1])
        return original(self, local, remote, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "put_file", put_file)
    return uploaded


def test_every_file_is_uploaded_before_the_manifest(
    bucket: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded = _uploads(monkeypatch)

    result = publish_statement(small_statement(), bucket)

    assert uploaded[-1] == "manifest.json"
    assert sorted(uploaded[:-1]) == sorted(result.files)
    assert result.manifest_url == f"memory://{bucket.path}/{PERIOD}/manifest.json"
    manifest = read_published(bucket, PERIOD)
    assert manifest is not None
    assert set(manifest["files"]) == set(result.files)


def test_url_string_root_works_like_a_upath(bucket: UPath) -> None:
    publish_statement(small_statement(), f"memory://{bucket.path}")

    assert read_published(bucket, PERIOD) is not None


def test_rerun_removes_files_the_new_set_does_not_have(bucket: UPath) -> None:
    publish_statement(small_statement(("sales", "support", "legal")), bucket)

    publish_statement(small_statement(("sales", "support")), bucket)

    assert not (bucket / PERIOD / "cost-centers" / "legal-2026-10.xlsx").exists()
    manifest = read_published(bucket, PERIOD)
    assert manifest is not None
    assert "cost-centers/legal-2026-10.xlsx" not in manifest["files"]


def test_rerun_of_the_same_statement_keeps_identical_objects(bucket: UPath) -> None:
    publish_statement(small_statement(), bucket)
    before = {
        path.path: path.read_bytes() for path in (bucket / PERIOD).rglob("*") if path.is_file()
    }

    publish_statement(small_statement(), bucket)

    after = {
        path.path: path.read_bytes() for path in (bucket / PERIOD).rglob("*") if path.is_file()
    }
    assert after == before


def test_interrupted_upload_reads_as_unpublished_then_a_rerun_completes(
    bucket: UPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_statement(small_statement(), bucket)
    _uploads(monkeypatch, fail_at=3)

    with pytest.raises(ConnectionError):
        publish_statement(small_statement(base="50.00"), bucket)

    assert read_published(bucket, PERIOD) is None
    monkeypatch.undo()
    publish_statement(small_statement(base="50.00"), bucket)
    manifest = read_published(bucket, PERIOD)
    assert manifest is not None
    assert manifest["totals"]["cost_usd"] == "103.00"


def test_tampered_object_is_not_trusted(bucket: UPath) -> None:
    publish_statement(small_statement(), bucket)

    (bucket / PERIOD / "chargeback-2026-10.csv").write_bytes(b"period\n")

    assert read_published(bucket, PERIOD) is None


def test_month_never_published_reads_as_none(bucket: UPath) -> None:
    assert read_published(bucket, PERIOD) is None
