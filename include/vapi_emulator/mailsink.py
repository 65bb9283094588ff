"""A debugging SMTP server on loopback that keeps every mail: for ``make demo`` and the tests.

Nothing leaves the machine: the server listens on 127.0.0.1 only, accepts any sender and
recipient, and writes each message as an ``.eml`` file (open it with any mail program)
into a folder, besides keeping it in memory. It uses ``aiosmtpd``, of the ``emulator``
extra (installed by ``make install``); production delivery never imports this module.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

LOOPBACK = "127.0.0.1"
_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]+")
_NUMBERED = re.compile(r"^(\d{4,})-.*\.eml$")


@dataclass(frozen=True)
class ReceivedMail:
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)


class MailSink:
    """aiosmtpd handler: accept everything, keep it, optionally write ``.eml`` files."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.received: list[ReceivedMail] = []
        self._lock = threading.Lock()
        # Number after the files an earlier server left: a second ``make demo`` mails only
        # what is new (a budget alert) and must not overwrite the first run's mails.
        self._kept = _last_number(folder)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = ReceivedMail(
            envelope_from=str(envelope.mail_from),
            recipients=tuple(str(address) for address in envelope.rcpt_tos),
            data=bytes(envelope.original_content or envelope.content),
        )
        with self._lock:
            self.received.append(mail)
            number = self._kept + len(self.received)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = _UNSAFE.sub("_", ",".join(mail.recipients))[:80]
            (self.folder / f"{number:04d}-{name}.eml").write_bytes(mail.data)
        return "250 OK: kept"


def _last_number(folder: Path | None) -> int:
    if folder is None or not folder.is_dir():
        return 0
    numbers = [int(found.group(1)) for p in folder.iterdir() if (found := _NUMBERED.match(p.name))]
    return max(numbers, default=0)


class LoopbackController(Controller):
    """aiosmtpd's threaded controller on 127.0.0.1 and a free port chosen by the kernel.

    The stock controller checks readiness by connecting to the port it was given, which
    fails for port 0; this one reads the bound port first, so there is no race on a
    port picked in advance.
    """

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname=LOOPBACK, port=0, **kwargs)

    def _trigger_server(self) -> None:
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]
