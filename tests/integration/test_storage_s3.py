"""Statements on S3 through Airflow's ``ObjectStoragePath`` and an ``aws`` connection.

A real S3 HTTP server (moto's server mode) on loopback: uploads, listings, deletes and
reads go through the Amazon provider's s3fs filesystem exactly as in a deployment.
S3 has no rename, so the rule is "manifest last, verify on read": these tests watch the
bucket with a second, independent reader between every step of a publish and require
that it only ever sees the previous complete set, nothing, or the new complete set.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.pipeline import RunSettings, plan_run
from vapi_chargeback.statement import Statement
from vapi_chargeback.storage import publish_statement, read_published

from support.s3_server import ACCESS_KEY, CONN_ENV, CONN_ID, REGION, SECRET_KEY, LocalS3, local_s3
from support.storage import PERIOD, small_statement, snapshot

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
Observation = str | None
"""What a reader saw: the published ``totals.cost_usd`` of a trusted month, or ``None``."""


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    """One moto server for the module; the connection is only in this process's env."""
    with local_s3() as server, pytest.MonkeyPatch.context() as env:
        env.setenv(CONN_ENV, server.connection_json())
        forget_airflow_s3_store()
        yield server
        forget_airflow_s3_store()


def forget_airflow_s3_store() -> None:
    """Drop Airflow's per-process cache of the S3 filesystems these tests configure.

    ``airflow.sdk.io.attach`` keeps one filesystem per (protocol, conn_id) for the life of
    the process; a later server on another port must not inherit this one's endpoint.
    """
    from airflow.sdk.io import store

    for alias in ("s3", f"s3-{CONN_ID}"):
        store._STORE_CACHE.pop(alias, None)


@pytest.fixture
def prefix() -> str:
    return f"statements-{uuid.uuid4().hex[:8]}"


def airflow_root(s3: LocalS3, prefix: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(s3.url(prefix))


@dataclass(frozen=True)
class OutsideReader:
    """Another client of the bucket, as a downstream process is: own s3fs, own cache, no Airflow."""

    fs: Any
    path: str
    protocol: str = "s3"


def outside_reader(s3: LocalS3, prefix: str) -> OutsideReader:
    return OutsideReader(s3.filesystem(), f"{s3.bucket}/{prefix}")


def observe(reader: OutsideReader) -> Observation:
    manifest = read_published(reader, PERIOD)
    return None if manifest is None else str(manifest["totals"]["cost_usd"])


def published_bytes(s3: LocalS3, prefix: str) -> dict[str, bytes]:
    return s3.objects(f"{prefix}/{PERIOD}")


def local_bytes(statement: Statement, folder: Path) -> dict[str, bytes]:
    """The same statement published to a local folder: the reference for the S3 objects."""
    publish_statement(statement, folder.as_uri())
    month = folder / PERIOD
    return {name: (month / name).read_bytes() for name in snapshot(month)}


def watch(
    monkeypatch: pytest.MonkeyPatch,
    fs: Any,
    after_each: Callable[[str, str], None],
) -> None:
    """Call ``after_each(operation, key)`` after every upload and delete of the publisher's fs.

    s3fs mirrors its async methods as instance attributes, so patching the instance
    intercepts exactly the calls ``publish_statement`` makes, on the calling thread.
    """
    for name in ("put_file", "rm_file"):
        original = getattr(fs, name)

        def wrapped(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            result = _original(*args, **kw)
            key = str(args[1] if _name == "put_file" else args[0])
            after_each(_name, key.rsplit(f"/{PERIOD}/", 1)[-1])
            return result

        monkeypatch.setattr(fs, name, wrapped)


def test_s3_publish_is_byte_identical_to_a_local_publish(
    s3: LocalS3, prefix: str, tmp_path: Path
) -> None:
    root = airflow_root(s3, prefix)

    result = publish_statement(small_statement(), root)

    assert result.folder == f"s3://{s3.bucket}/{prefix}/{PERIOD}"
    assert result.manifest_url == f"{result.folder}/manifest.json"
    expected = local_bytes(small_statement(), tmp_path)
    assert published_bytes(s3, prefix) == expected
    manifest = read_published(root, PERIOD)
    assert manifest is not None
    assert set(manifest["files"]) == set(result.files) == set(expected) - {"manifest.json"}
    assert read_published(outside_reader(s3, prefix), PERIOD) == manifest


def test_republish_replaces_the_set_and_removes_what_it_no_longer_has(
    s3: LocalS3, prefix: str, tmp_path: Path
) -> None:
    root = airflow_root(s3, prefix)
    publish_statement(small_statement(("sales", "support", "legal")), root)
    assert "cost-centers/legal-2026-10.xlsx" in published_bytes(s3, prefix)

    publish_statement(small_statement(("sales", "support"), base="20.00"), root)

    expected = local_bytes(small_statement(("sales", "support"), base="20.00"), tmp_path)
    assert published_bytes(s3, prefix) == expected
    assert observe(outside_reader(s3, prefix)) == "43.00"


def test_a_reader_sees_the_old_set_nothing_or_the_new_set_at_every_step(
    s3: LocalS3, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = airflow_root(s3, prefix)
    publish_statement(small_statement(("sales", "support", "legal")), root)
    reader = outside_reader(s3, prefix)
    assert observe(reader) == "35.00"
    seen: list[tuple[str, str, Observation]] = []
    watch(monkeypatch, root.fs, lambda op, key: seen.append((op, key, observe(reader))))

    publish_statement(small_statement(("sales", "support"), base="50.00"), root)

    operations = [(op, key) for op, key, _ in seen]
    manifest_at = operations.index(("put_file", "manifest.json"))
    assert all(op == "put_file" for op, _ in operations[:manifest_at]), "manifest is last"
    assert operations[manifest_at + 1 :] == [("rm_file", "cost-centers/legal-2026-10.xlsx")]
    before = [observation for _, _, observation in seen[:manifest_at]]
    after = [observation for _, _, observation in seen[manifest_at:]]
    assert set(before) <= {"35.00", None}, "before the manifest: old set or nothing"
    assert None in before, "the data files changed, so the old manifest stopped matching"
    assert after == ["103.00"] * len(after), "from the manifest on: the whole new set"


def test_a_rerun_over_unchanged_inputs_stays_readable_throughout(
    s3: LocalS3, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same statement, another run: identical files, so the old manifest keeps matching."""
    root = airflow_root(s3, prefix)
    first = small_statement()
    publish_statement(first, root)
    reader = outside_reader(s3, prefix)
    seen: list[Observation] = []
    watch(monkeypatch, root.fs, lambda op, key: seen.append(observe(reader)))

    rerun = replace(first, provenance=replace(first.provenance, run_id="run-2"))
    publish_statement(rerun, root)

    assert seen == ["23.00"] * 6
    manifest = read_published(reader, PERIOD)
    assert manifest is not None
    assert manifest["run_id"] == "run-2"


@pytest.mark.parametrize("fail_at", ["chargeback-2026-10.xlsx", "manifest.json"])
def test_a_publish_that_dies_mid_upload_leaves_the_previous_set_or_nothing(
    s3: LocalS3, prefix: str, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    root = airflow_root(s3, prefix)
    publish_statement(small_statement(), root)
    reader = outside_reader(s3, prefix)
    original = root.fs.put_file

    def put_file(local: str, remote: str, *args: Any, **kw: Any) -> Any:
        if remote.endswith(f"/{PERIOD}/{fail_at}"):
            raise ConnectionError("connection reset by peer")
        return original(local, remote, *args, **kw)

    monkeypatch.setattr(root.fs, "put_file", put_file)
    with pytest.raises(ConnectionError):
        publish_statement(small_statement(base="50.00"), root)

    assert observe(reader) is None, "some files are new, the manifest is old: not trusted"
    monkeypatch.undo()
    publish_statement(small_statement(base="50.00"), root)
    assert observe(reader) == "103.00"


def test_a_publish_that_dies_while_deleting_leftovers_is_already_published(
    s3: LocalS3, prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = airflow_root(s3, prefix)
    publish_statement(small_statement(("sales", "support", "legal")), root)

    def rm_file(*args: Any, **kw: Any) -> None:
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(root.fs, "rm_file", rm_file)
    with pytest.raises(ConnectionError):
        publish_statement(small_statement(("sales", "support")), root)

    assert observe(outside_reader(s3, prefix)) == "23.00", "the manifest went up: new set"
    monkeypatch.undo()
    publish_statement(small_statement(("sales", "support")), root)
    assert published_bytes(s3, prefix) == local_bytes(
        small_statement(("sales", "support")), tmp_path
    )


def test_a_long_lived_reader_reads_a_republished_month(s3: LocalS3, prefix: str) -> None:
    """A reader whose filesystem listed the month earlier must not trust its stale cache.

    s3fs caches listings (size, ETag) per filesystem for the life of the process; a
    statements page or a sensor that listed the month before a republish used to fail
    with ``FileExpired`` instead of reading the new set.
    """
    root = airflow_root(s3, prefix)
    publish_statement(small_statement(), root)
    reader = outside_reader(s3, prefix)
    assert len(reader.fs.find(reader.path)) == 6
    assert observe(reader) == "23.00"

    publish_statement(small_statement(base="50.00"), root)

    assert observe(reader) == "103.00"


def test_without_conn_id_the_aws_environment_applies(
    s3: LocalS3, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s3://bucket/prefix`` (the Docker setup): boto3's own chain — ``AWS_*`` variables, roles."""
    from airflow.sdk import ObjectStoragePath

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)
    forget_airflow_s3_store()
    root = ObjectStoragePath(f"s3://{s3.bucket}/{prefix}")
    try:
        publish_statement(small_statement(), root)
    finally:
        forget_airflow_s3_store()

    assert root.conn_id is None
    assert observe(outside_reader(s3, prefix)) == "23.00"


def test_a_run_to_a_missing_bucket_fails_instead_of_creating_it(
    s3: LocalS3, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    settings = RunSettings(
        config_path=str(CONFIG),
        output_url=s3.url("statements").replace(s3.bucket, missing),
        default_output_url=tmp_path.as_uri(),
        month=PERIOD,
        run_id="manual__2026-11-01T00:00:00+00:00",
    )

    with pytest.raises(FileNotFoundError):
        plan_run(settings, open_path=ObjectStoragePath)

    buckets = {bucket["Name"] for bucket in s3.client().list_buckets()["Buckets"]}
    assert missing not in buckets
