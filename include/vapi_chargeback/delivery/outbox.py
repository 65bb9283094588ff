"""The mechanics delivery and budget alerts share: a ledger written in one step, a hand-over
recorded before and after, rounds of retries, and the error that names what is still unsent.

Both steps promise the same thing — a mail the ledger records ``sent`` never goes again,
one left ``sending`` by a killed worker goes again with its Message-ID — so the code that
keeps the promise exists once. What differs (which records, which mails, the wording of
the report) stays in ``delivery.deliver`` and ``budgets.alerts``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from vapi_chargeback.delivery.send import Failure, Sender, backoff_seconds, classify
from vapi_chargeback.errors import ChargebackError
from vapi_chargeback.filelock import exclusive_lock

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 900.0
LOCK_POLL_SECONDS = 0.2

Model = TypeVar("Model", bound=BaseModel)
Item = TypeVar("Item")


class UnsentError(ChargebackError):
    """Some mails were not accepted; the message names each, with its last error.

    Subclasses word the headline (``headline``) and say what to do (``advice``).
    """

    advice: ClassVar[str] = ""

    def __init__(self, report: Any) -> None:
        self.report = report
        lines = [f"{key} ({detail})" for key, detail in sorted(report.failed.items())]
        super().__init__(self.headline(report) + ": " + "; ".join(lines) + ". " + self.advice)

    @classmethod
    def headline(cls, report: Any) -> str:
        raise NotImplementedError


@dataclass
class Tally:
    """Which keys the server accepted in this call, which are still unsent and why."""

    what: str
    """How the log names a mail before its keys: ``alert `` or nothing."""
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Key → ``recipient: last error``."""
    refused: set[str] = field(default_factory=set)
    """Keys in ``failed`` whose last failure was permanent (SMTP 5xx)."""
    mails: int = 0
    """Mails the server accepted (one mail may carry several keys)."""

    def accepted(self, keys: Sequence[str]) -> None:
        self.sent += keys
        self.mails += 1
        for key in keys:
            self.failed.pop(key, None)
            self.refused.discard(key)

    def rejected(
        self,
        keys: Sequence[str],
        recipient: str,
        failure: Failure,
        round_number: int,
        max_attempts: int,
    ) -> None:
        log.warning(
            "%s%s to %s: %s failure (round %d of %d): %s",
            self.what,
            ", ".join(keys),
            recipient,
            "temporary" if failure.transient else "permanent",
            round_number,
            max_attempts,
            failure.detail,
        )
        for key in keys:
            self.failed[key] = f"{recipient}: {failure.detail}"
            if failure.transient:
                self.refused.discard(key)
            else:
                self.refused.add(key)

    @property
    def all_refused(self) -> bool:
        """Every unsent one was refused for good: retrying the task cannot help."""
        return bool(self.failed) and self.refused == set(self.failed)


def in_rounds(
    pending: list[Item],
    send: Callable[[Item, int], Item | None],
    *,
    max_attempts: int,
    backoff_base: float,
    sleep: Callable[[float], None],
    describe: Callable[[list[Item]], str],
) -> None:
    """Every pending mail once, then those ``send`` hands back (a temporary failure) again
    after a backoff, up to ``max_attempts`` rounds: one bad address never holds up the
    others, and a permanent failure is not retried within the run."""
    for round_number in range(1, max_attempts + 1):
        retry = [again for item in pending if (again := send(item, round_number)) is not None]
        if not retry or round_number == max_attempts:
            return
        wait = backoff_seconds(backoff_base, round_number)
        log.info("retrying %s in %.1f s", describe(retry), wait)
        sleep(wait)
        pending = retry


def hand_over(
    records: Sequence[Model],
    put: Callable[[list[Model]], None],
    message: EmailMessage,
    sender: Sender,
    *,
    envelope_from: str,
    recipients: list[str],
    clock: Callable[[], datetime],
    label: str,
) -> Failure | None:
    """Send one mail whose ``records`` (already ``sending``) ``put`` writes before and after.

    ``None`` when the server accepted it, else why not.
    """
    put(list(records))
    try:
        sender.send(message, envelope_from=envelope_from, recipients=recipients)
    except Exception as error:
        failure = classify(error)
        put(
            [
                record.model_copy(
                    update={
                        "status": "failed",
                        "error": failure.detail,
                        "permanent": not failure.transient,
                    }
                )
                for record in records
            ]
        )
        return failure
    log.info("%s: sent to %s as %s", label, ", ".join(recipients), message["Message-ID"])
    at = clock()
    put(
        [
            record.model_copy(
                update={"status": "sent", "sent_at": at, "error": None, "permanent": False}
            )
            for record in records
        ]
    )
    return None


def read_model(paths: Sequence[Any], model: type[Model]) -> Model | None:
    """The first of ``paths`` that exists, validated; ``None`` when none does."""
    for path in paths:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        return model.model_validate_json(raw)
    return None


def model_bytes(value: BaseModel) -> bytes:
    return (value.model_dump_json(indent=2) + "\n").encode()


def write_model(path: Any, value: BaseModel) -> None:
    """Replace the file in one step: a reader sees the old one or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, model_bytes(value))


def replace_file(target: Any, data: bytes) -> None:
    """A reader sees the old file or the new one, never half of one.

    Local files: a temporary sibling, fsynced, renamed over the target. Object storage
    has no rename, but a single PUT already replaces an object atomically.
    """
    local = _local_path(target)
    if local is None:
        target.write_bytes(data)
        return
    descriptor, temporary = tempfile.mkstemp(prefix=f".{local.name}.", dir=local.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, local)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _local_path(path: Any) -> Path | None:
    if isinstance(path, Path):
        return path
    if getattr(path, "protocol", None) in ("", "file", "local"):
        return Path(path.path)
    return None


@contextlib.contextmanager
def month_lock(root: Any, name: str, holder: str, timeout: float) -> Iterator[None]:
    """One step per month at a time on local output; the kernel frees it if its holder dies.

    ``name`` is the lock file under ``root`` (``.lock-deliver-2026-03``). Object storage
    has no lock: there the caller's schedule must keep two steps of one month apart.
    """
    if not isinstance(root, Path):
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / name, timeout=timeout, poll=LOCK_POLL_SECONDS, holder=holder):
        yield
