"""The lead's DAG hands ``publish_statement`` an Airflow ``ObjectStoragePath``."""

from __future__ import annotations

from pathlib import Path

from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, small_statement, snapshot


def test_object_storage_path_to_a_local_folder_publishes_atomically(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(tmp_path.as_uri())

    result = publish_statement(small_statement(), root)

    assert result.folder == (tmp_path / PERIOD).as_uri()
    assert "manifest.json" in snapshot(tmp_path / PERIOD)
    manifest = read_published(root, PERIOD)
    assert manifest is not None
    assert manifest["files"].keys() == result.files.keys()
