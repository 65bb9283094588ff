"""A zip writer whose bytes depend only on what is written, never on when or where.

An ``.xlsx`` file is a zip. ``zipfile`` stamps every entry with the wall-clock time,
the platform and default permissions, so the same workbook saved twice differs.
Finance compares reruns by sha256 (the manifest lists them), so every entry here
gets one pinned timestamp (taken from the statement period), Unix attributes
``0644``, deflate at the default level, and entries keep the order they are written.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from io import BytesIO
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import SizedBuffer, StrPath

ZipTimestamp = tuple[int, int, int, int, int, int]

EARLIEST_ZIP_TIME: ZipTimestamp = (1980, 1, 1, 0, 0, 0)
"""The DOS date format in zip headers cannot express anything earlier."""
UNIX_SYSTEM = 3
FILE_MODE = 0o644
COPY_CHUNK = 1 << 20


def zip_timestamp(moment: datetime) -> ZipTimestamp:
    """The UTC wall time of ``moment`` as a zip entry time, in what zip can store:
    from 1980 on, seconds in steps of two."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    second = utc.second - utc.second % 2
    stamp: ZipTimestamp = (utc.year, utc.month, utc.day, utc.hour, utc.minute, second)
    return max(stamp, EARLIEST_ZIP_TIME)


class DeterministicZipFile(zipfile.ZipFile):
    """``ZipFile`` for writing, with every entry's metadata pinned.

    Subclasses may override ``content`` to transform a file's bytes while it is copied
    into the archive (the workbook writer streams sheet rows that way).
    """

    def __init__(self, file: StrPath | IO[bytes], date_time: ZipTimestamp) -> None:
        super().__init__(file, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._date_time = date_time

    def entry(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = UNIX_SYSTEM
        info.external_attr = FILE_MODE << 16
        return info

    def writestr(
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: SizedBuffer | str,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        name = (
            zinfo_or_arcname.filename
            if isinstance(zinfo_or_arcname, zipfile.ZipInfo)
            else zinfo_or_arcname
        )
        super().writestr(self.entry(name), data)

    def write(
        self,
        filename: StrPath | BytesIO,
        arcname: StrPath | None = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        """Store a file, or the bytes of a ``BytesIO`` (then ``arcname`` is required)."""
        if isinstance(filename, BytesIO):
            if arcname is None:
                raise ValueError("an in-memory file needs an arcname")
            self._store(str(arcname).lstrip("/"), BytesIO(filename.getvalue()))
            return
        name = str(arcname if arcname is not None else filename).lstrip("/")
        with open(filename, "rb") as source:
            self._store(name, source)

    def _store(self, name: str, source: IO[bytes]) -> None:
        with self.open(self.entry(name), "w") as target:
            for chunk in self.content(name, source):
                target.write(chunk)

    def content(self, name: str, source: IO[bytes]) -> Iterable[bytes]:
        """The bytes stored for entry ``name``; by default the source file unchanged."""
        del name
        while chunk := source.read(COPY_CHUNK):
            yield chunk
