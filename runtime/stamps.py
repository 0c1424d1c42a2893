"""RFC 3339 time stamps as the wire carries them, compared as times.

The project writes ``created_at`` with exactly six fraction digits and a ``Z``
(``2026-11-21T05:22:26.123456Z``); the original crate writes chrono's serde form,
with as many fraction digits as it needs: none, three, six or nine
(``2026-11-21T05:22:26Z``, ``...26.123456789Z``), and other writers may use an
offset (``+02:00``). Such strings do not sort as the times they name (``26Z`` sorts
after ``26.5Z``), so readers compare :func:`order_key` instead: one fixed-width UTC
form with nine fraction digits, which does.
"""

from __future__ import annotations

import calendar
import re
import time

#: ``YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`` (no zone: UTC); a fraction past nine digits is cut.
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?")
_NS = 1_000_000_000


def parse_ns(text: object) -> int | None:
    """Unix nanoseconds of an RFC 3339 stamp, or ``None`` if ``text`` is not one.

    Never raises: a stamp comes from files anyone may have written.
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    fraction = (match.group(7) or "")[:9].ljust(9, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(9) is not None:  # an offset: local time = UTC + offset
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    return seconds * _NS + int(fraction)


def format_ns(ns: int) -> str:
    """The canonical UTC form of unix nanoseconds: ``YYYY-MM-DDTHH:MM:SS.fffffffffZ``."""
    seconds, fraction = divmod(ns, _NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def format_seconds(seconds: float) -> str:
    """Unix seconds as an RFC 3339 UTC stamp with microseconds (what chrono reads)."""
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


def order_key(text: str) -> str:
    """A key that sorts stamps as the times they name (unreadable ones first).

    The project's own form (27 characters, six digits, ``Z``) is turned into the key
    by appending three zeros, without parsing: a reader keys every message it merges.
    """
    if len(text) == 27 and text[26] == "Z" and text[19] == ".":
        return text[:26] + "000Z"
    ns = parse_ns(text)
    if ns is None or not 0 <= ns < 253402300800 * _NS:  # a key of another width would misorder
        return ""
    return format_ns(ns)
