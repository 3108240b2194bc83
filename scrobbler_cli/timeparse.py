"""Pure parsing of the dates, durations and ranges users type.

Dates (cli.md): ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS][±HH:MM|Z]`` and unix seconds.
A date without an offset is read in ``tz`` (an IANA name) or, when ``tz`` is None, in
the system's local zone with its real daylight-saving rules.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UsageError

ROLLING = {
    "week": 7,
    "month": 30,
    "quarter": 91,
    "half-year": 182,
    "year": 365,
}
RANGES = [*ROLLING, "all"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def zone(name: str | None) -> tzinfo | None:
    """The zone called ``name``; None means the system's local zone."""
    if name is None or name.lower() == "local":
        return None
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}",
                         hint="use an IANA name such as Europe/Berlin, or UTC") from None


#: Dates are accepted from 1970 up to this (the year 9999 stays printable everywhere).
MAX_TIME = 253_402_300_799


def _stamp(dt: datetime, tz: tzinfo | None) -> int:
    """Unix seconds; a time of 1970 before the epoch (its first hours east of UTC) is
    the epoch: no listen is older, and 1970 is a year users may ask for."""
    if dt.tzinfo is None and tz is not None:
        dt = dt.replace(tzinfo=tz)
    try:
        stamp = int(dt.timestamp())  # naive: local time through the C library's rules
    except (OverflowError, OSError, ValueError):
        raise UsageError(f"the date {dt.isoformat()} is out of range",
                         hint="use a date between 1970 and 9999") from None
    return max(stamp, 0) if dt.year >= 1970 else stamp


def _checked(stamp: int, text: str) -> int:
    if not 0 <= stamp <= MAX_TIME:
        raise UsageError(f"the date {text!r} is out of range",
                         hint="use a date between 1970 and 9999")
    return stamp


def parse_date(text: str, tz: tzinfo | None = None) -> int:
    """Unix seconds for a user's date, time or timestamp."""
    value = text.strip()
    if re.fullmatch(r"[-+]?\d+", value):
        if len(value) == 4 and 1970 <= int(value) <= 9999:  # `--since 2024`
            raise UsageError(f"{text!r} could be a year or unix seconds",
                             hint=f"for the year write {value}-01-01; unix seconds that "
                                  "small are the first hours of 1970")
        if len(value) == 8 and (day := _compact_date(value)):  # `--since 20231114`
            raise UsageError(f"{text!r} could be a date or unix seconds",
                             hint=f"for the date write {day}; unix seconds that small "
                                  "are in 1970")
        return _checked(int(value), text)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read the date {text!r}",
            hint="use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+HH:MM] or unix seconds",
        ) from None
    return _checked(_stamp(dt, tz), text)


def _compact_date(value: str) -> str | None:
    """``YYYY-MM-DD`` when eight digits spell a date from 1970 (``20231114``), else None."""
    try:
        day = datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return None
    return day.date().isoformat() if day.year >= 1970 else None


def parse_duration(text: str) -> int:
    """Seconds in ``14d``, ``2w``, ``36h``, ``90m``, ``3600s`` or ``3600``."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"cannot read the duration {text!r}",
                         hint="use a number with s, m, h, d or w, such as 14d")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def rolling(name: str, now: int) -> tuple[int, int]:
    """The rolling window called ``name`` that ends ``now``: [now - days, now)."""
    if name not in ROLLING:
        raise UsageError(f"unknown range {name!r}", hint="use " + ", ".join(RANGES))
    return now - ROLLING[name] * 86400, now


def calendar_year(year: int, tz: tzinfo | None) -> tuple[int, int]:
    if not 1970 <= year <= 9998:
        raise UsageError(f"the year {year} is out of range", hint="use a year from 1970")
    return _stamp(datetime(year, 1, 1), tz), _stamp(datetime(year + 1, 1, 1), tz)


def calendar_month(text: str, tz: tzinfo | None) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UsageError(f"cannot read the month {text!r}", hint="use YYYY-MM, such as 2024-05")
    year, month = int(m.group(1)), int(m.group(2))
    if not 1970 <= year <= 9998:
        raise UsageError(f"the month {text!r} is out of range", hint="use a year from 1970")
    start = datetime(year, month, 1)
    end = (start + timedelta(days=32)).replace(day=1)
    return _stamp(start, tz), _stamp(end, tz)
