"""What every ``vapi-chargeback`` command shares: names, defaults, exit codes, argument types.

Kept apart from the commands so that each command module imports only this and the core
modules it drives, and the parser assembly (``cli/__init__``) imports the commands.
"""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

PROG = "vapi-chargeback"
API_KEY_ENV = "VAPI_API_KEY"
DEFAULT_API_URL = "https://api.vapi.ai"
DEFAULT_CONFIG = Path("include/config/chargeback.yaml")
"""The project's config, relative to the working directory (the DAG's default too)."""
DEFAULT_OUTPUT = Path("output")
"""Where statements go when neither ``--output`` nor the config's ``output`` names a place."""
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def month_arg(text: str) -> str:
    """``--month``: a calendar month as ``YYYY-MM``."""
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month; use YYYY-MM, e.g. 2026-10")
    return text


def date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def config_arg(parser: argparse.ArgumentParser, what: str, dest: str = "config") -> None:
    """The ``--config PATH`` every command that reads ``chargeback.yaml`` takes (``dest``
    other than ``config`` where a positional CONFIG may name it too)."""
    parser.add_argument(
        "--config",
        dest=dest,
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"{what} (default: {DEFAULT_CONFIG})",
    )


def storage_url(text: str) -> str:
    """A URL as given; a plain path as an absolute ``file://`` URL (the run's folders are
    URLs, and a relative path would depend on where later steps run)."""
    if "://" in text:
        return text
    return Path(text).expanduser().resolve().as_uri()


def write_whole(path: Path, data: bytes) -> None:
    """Replace ``path`` in one rename, so a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """Rows under headers in aligned columns; ``numeric`` columns right-aligned."""
    numeric = numeric or set()
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            f"{cell:>{width}}" if index in numeric else f"{cell:<{width}}"
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, rows)])
