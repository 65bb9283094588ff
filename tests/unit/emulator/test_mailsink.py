"""The debugging mail server's files: a restarted server numbers after the ones it finds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from vapi_emulator.mailsink import MailSink


def test_a_second_server_keeps_the_first_servers_mails(tmp_path: Path) -> None:
    (tmp_path / "0001-finance@example.com.eml").write_bytes(b"first run")
    (tmp_path / "0005-ops@example.com.eml").write_bytes(b"first run")
    (tmp_path / "notes.txt").write_text("not a mail")
    sink = MailSink(tmp_path)
    envelope = SimpleNamespace(
        mail_from="c@example.com",
        rcpt_tos=["support-lead@example.com", "finance@example.com"],
        original_content=b"Subject: alert\r\n\r\nbody\r\n",
        content=None,
    )

    assert asyncio.run(sink.handle_DATA(None, None, envelope)).startswith("250")

    written = tmp_path / "0006-support-lead@example.com_finance@example.com.eml"
    assert written.read_bytes() == b"Subject: alert\r\n\r\nbody\r\n"
    assert (tmp_path / "0001-finance@example.com.eml").read_bytes() == b"first run"
