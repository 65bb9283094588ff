"""Public entry points for the emulator's data: the demo org, synthetic calls, loading records.

The demo configuration, the CLI and other engineers' tests import from here, so the
modules behind it can be reorganised without breaking them.
"""

from __future__ import annotations

from vapi_emulator.org import (
    Assistant,
    DemoOrg,
    MappingRow,
    demo_org,
    render_mapping_csv,
)

__all__ = [
    "Assistant",
    "DemoOrg",
    "MappingRow",
    "demo_org",
    "render_mapping_csv",
]
