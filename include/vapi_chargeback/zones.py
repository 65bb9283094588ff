"""Which time zone names may define an org's calendar, and what to write instead.

A statement month is a calendar month in the org zone, so the zone must follow a real
place's summer time: only IANA ``Area/Location`` names (and UTC) do. An abbreviation such
as ``EST`` is the tz database's fixed UTC-5, a ``GMT+1`` is a fixed offset with a POSIX
sign, and legacy aliases may vanish from the database: each is refused with the name to use.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from vapi_chargeback.analytics.models import is_iana_timezone

UTC_ZONES = ("UTC", "Etc/UTC")
IANA_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
"""The tz database's continents and oceans: a zone named ``Area/Location`` follows the
summer time of a real place; anything else but UTC is an abbreviation, a fixed offset or a
legacy alias."""
_NEW_YORK, _CHICAGO, _DENVER, _PHOENIX = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
)
_LOS_ANGELES, _PARIS, _BERLIN, _LONDON = (
    "America/Los_Angeles",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/London",
)
_ZONE_HINTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("EST", "EDT", "EST5EDT"), (_NEW_YORK,)),
    **dict.fromkeys(("CST", "CDT", "CST6CDT"), (_CHICAGO,)),
    **dict.fromkeys(("MST", "MDT", "MST7MDT"), (_DENVER, _PHOENIX)),
    **dict.fromkeys(("PST", "PDT", "PST8PDT"), (_LOS_ANGELES,)),
    **dict.fromkeys(("AKST", "AKDT"), ("America/Anchorage",)),
    "HST": ("Pacific/Honolulu",),
    **dict.fromkeys(("CET", "CEST", "MET", "MEST"), (_PARIS, _BERLIN)),
    **dict.fromkeys(("EET", "EEST"), ("Europe/Athens", "Europe/Helsinki")),
    **dict.fromkeys(("WET", "WEST"), ("Europe/Lisbon",)),
    **dict.fromkeys(("BST", "GB", "GB-EIRE"), (_LONDON,)),
    **dict.fromkeys(("GMT", "GMT0", "GMT+0", "GMT-0", "GREENWICH"), ("UTC", _LONDON)),
    **dict.fromkeys(("UCT", "UNIVERSAL", "ZULU", "Z"), ("UTC",)),
}
"""What people mean by an abbreviation (upper case, without ``Etc/``): ``EST`` in a New York
company's config means New York time, summer included (the tz database's own ``EST`` is
UTC-5 all year)."""
_LEGACY = "kept only for backward compatibility (some systems no longer ship them)"
_FIXED_OFFSET = re.compile(r"^(?:Etc/)?(?:GMT|UTC|UT)?\s*[+-]\d{1,2}(?::?\d{2})?$")


def timezone_problem(name: str) -> str | None:
    """Why ``name`` cannot be the org zone, with the name to use instead; none if it can.

    Only ``Area/Location`` names follow a place's summer time: an abbreviation such as
    ``EST`` is the tz database's fixed UTC-5, so a New York statement month would start
    an hour off all summer, and legacy aliases may vanish from the database.
    """
    if name in UTC_ZONES:
        return None
    known = is_iana_timezone(name)
    if known and name.split("/", 1)[0] in IANA_AREAS and "/" in name:
        return None
    hint = _ZONE_HINTS.get(name.removeprefix("Etc/").upper())
    link = _link_target(name) if known else None
    summer = "so statement months would miss or misplace summer time"
    if hint:
        kind, why, use = "an abbreviation", summer, " or ".join(repr(zone) for zone in hint)
    elif _FIXED_OFFSET.match(name):
        kind, why = "a fixed UTC offset", summer
        if name.startswith("Etc/GMT"):
            kind += f" (POSIX sign: it means UTC{_posix_flip(name)})"
        use = f"the name of the place whose calendar the statements follow, e.g. {_NEW_YORK!r}"
    elif link:
        kind, why, use = "a legacy alias", _LEGACY, repr(link)
    elif known:
        kind, why = "not a place", "so it names no calendar"
        use = f"the name of the place, e.g. {_BERLIN!r}, or 'UTC'"
    else:
        return f"{name!r} is not an IANA time zone name; use one like {_BERLIN!r} or 'UTC'"
    return f"{name!r} is {kind}, not an IANA Area/Location zone, {why}; use {use}"


def _posix_flip(name: str) -> str:
    offset = name.removeprefix("Etc/GMT")
    return offset.translate(str.maketrans("+-", "-+"))


@cache
def _zone_links() -> dict[str, str]:
    """Legacy alias → the zone it links to, from the tz database shipped as ``tzdata``."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo/tzdata.zi").read_text("utf-8")
    except (ModuleNotFoundError, OSError):
        return {}
    links: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    return links


def _link_target(name: str) -> str | None:
    """The Area/Location zone a legacy alias (``US/Eastern``, ``Japan``) links to, if any."""
    target = _zone_links().get(name)
    if target and "/" in target and target.split("/", 1)[0] in IANA_AREAS:
        return target
    return None
