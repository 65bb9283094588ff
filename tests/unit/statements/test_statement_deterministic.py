from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from vapi_chargeback.statements.deterministic import DeterministicZipFile, zip_timestamp


@pytest.mark.parametrize(
    ("moment", "stamp"),
    [
        pytest.param(datetime(2026, 11, 1, tzinfo=UTC), (2026, 11, 1, 0, 0, 0), id="utc"),
        pytest.param(
            datetime(2026, 11, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
            (2026, 11, 1, 0, 0, 0),
            id="to-utc",
        ),
        pytest.param(
            datetime(2026, 11, 1, 0, 0, 59, tzinfo=UTC),
            (2026, 11, 1, 0, 0, 58),
            id="two-second-steps",
        ),
        pytest.param(
            datetime(1970, 1, 1, tzinfo=UTC), (1980, 1, 1, 0, 0, 0), id="before-zip-epoch"
        ),
    ],
)
def test_zip_timestamp(moment: datetime, stamp: tuple[int, ...]) -> None:
    assert zip_timestamp(moment) == stamp


def _archive(tmp_path: Path, mtime: float) -> bytes:
    source = tmp_path / f"part-{mtime}.xml"
    source.write_bytes(b"<x/>" * 100)
    source.chmod(0o600)
    import os

    os.utime(source, (mtime, mtime))
    buffer = io.BytesIO()
    with DeterministicZipFile(buffer, (2026, 10, 1, 0, 0, 0)) as archive:
        archive.writestr("a.xml", "<a/>")
        archive.writestr(zipfile.ZipInfo("b.xml", date_time=(2001, 1, 1, 0, 0, 0)), b"<b/>")
        archive.write(source, "c.xml")
    return buffer.getvalue()


def test_entries_ignore_clock_file_times_and_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _archive(tmp_path, 1_000_000_000)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    second = _archive(tmp_path, 1_800_000_000)

    assert first == second
    infos = zipfile.ZipFile(io.BytesIO(first)).infolist()
    assert [info.filename for info in infos] == ["a.xml", "b.xml", "c.xml"]
    assert {info.date_time for info in infos} == {(2026, 10, 1, 0, 0, 0)}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
    assert {info.external_attr >> 16 for info in infos} == {0o644}
