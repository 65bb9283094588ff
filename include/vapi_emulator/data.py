"""Public entry points for the emulator's data: the demo org, synthetic calls, loading records.

The demo, the CLI and other engineers' tests import from here, so the modules behind it
can be reorganised without breaking them.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from vapi_emulator.assistants import write_sidecar
from vapi_emulator.engine import Engine, OutputFormat, load_calls, write_calls
from vapi_emulator.generate import (
    DEFAULT_CALLS_PER_MONTH,
    DEFAULT_TIMEZONE,
    Progress,
    generate,
    month_bounds_ms,
    parse_month,
)
from vapi_emulator.org import (
    DEFAULT_ASSISTANTS,
    DEFAULT_SEED,
    Assistant,
    DemoOrg,
    MappingRow,
    demo_org,
    render_mapping_csv,
)
from vapi_emulator.records import MalformedRecordError

__all__ = [
    "Assistant",
    "DemoOrg",
    "Engine",
    "MalformedRecordError",
    "MappingRow",
    "demo_org",
    "generate_calls_file",
    "load_calls",
    "output_format_for",
    "render_mapping_csv",
]


def output_format_for(path: Path) -> OutputFormat:
    """JSON Lines for ``.jsonl``/``.ndjson``/``.json`` files, Parquet otherwise."""
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "parquet"


def generate_calls_file(
    out: Path,
    month: str,
    months: int = 1,
    calls_per_month: int = DEFAULT_CALLS_PER_MONTH,
    assistants: int = DEFAULT_ASSISTANTS,
    seed: int = DEFAULT_SEED,
    timezone: str = DEFAULT_TIMEZONE,
    output_format: OutputFormat | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the demo org's calls for ``months`` months from ``month`` (YYYY-MM); returns the count.

    With the defaults this is exactly what ``vapi-emulator generate --month M --out PATH``
    writes, the org that ``include/config/`` describes. Beside it goes the org's
    ``GET /assistant`` answer (``assistants.sidecar_path``), which ``serve`` reads.
    """
    org = demo_org(seed, assistants)
    calls = generate(org, seed, parse_month(month), months, calls_per_month, timezone, progress)
    if progress:
        progress(f"writing {len(calls):,} calls to {out}")
    write_calls(calls, org, out, output_format or output_format_for(out))
    first_call_ms, _ = month_bounds_ms(*parse_month(month), ZoneInfo(timezone))
    write_sidecar(out, org, seed, first_call_ms)
    return len(calls)
