"""The event contract's rules as JSON Schema patterns (ECMA 262, no look-around), for publishers in other languages.

``handlers.events`` puts them into the published schema (``schema/events.schema.json``); its validators stay the
judges, and ``tests/handlers/test_schema_agreement.py`` proves that both accept the same strings.
"""

from __future__ import annotations

__all__ = ["AMOUNT_DECIMALS", "AMOUNT_PATTERN", "IP_PATTERN", "TIMESTAMP_PATTERN"]

AMOUNT_DECIMALS = 8
"""Funding amounts may carry at most this many decimal places (KuCoin's transfer precision)."""
AMOUNT_PATTERN = (
    rf"^([1-9][0-9]{{0,15}}(\.[0-9]{{1,{AMOUNT_DECIMALS}}})?"
    + "".join(f"|0\\.0{{{z}}}[1-9][0-9]{{0,{AMOUNT_DECIMALS - 1 - z}}}" for z in range(AMOUNT_DECIMALS))
    + ")$"
)
"""A positive decimal: up to 16 integer digits (no leading zero), up to 8 decimals, not zero."""
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"({_OCTET}\.){{3}}{_OCTET}"
_H = "[0-9A-Fa-f]{1,4}"


def _ipv6_forms() -> list[str]:
    """Every textual IPv6 form ``ipaddress`` accepts: full, or ``::`` for one or more groups, each with or without
    a dotted IPv4 tail in the last 32 bits."""

    def run(n: int) -> str:  # n groups joined by ':'
        return "" if n == 0 else f"{_H}(:{_H}){{{n - 1}}}" if n > 1 else _H

    forms = [f"({_H}:){{7}}{_H}", f"({_H}:){{6}}{_IPV4}"]
    for left in range(8):
        for right in range(8 - left):
            forms.append(f"{run(left)}::{run(right)}")
            if left + right <= 5:
                tail = f"{run(right)}:{_IPV4}" if right else _IPV4
                forms.append(f"{run(left)}::{tail}")
    return forms


IP_PATTERN = "^(" + _IPV4 + "|" + "|".join(_ipv6_forms()) + ")$"
"""One IPv4 address (dotted quad, no leading zeros) or one IPv6 address (any RFC 4291 text form, no zone index)."""


def _timestamp_pattern() -> str:
    year = "([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
    leap = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
    day = (
        f"{year}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
        f"|02-(0[1-9]|1[0-9]|2[0-8]))|{leap}-02-29"
    )
    return f"^({day})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,9}})?(Z|\\+00:00)$"


TIMESTAMP_PATTERN = _timestamp_pattern()
"""RFC 3339 in UTC (``Z`` or ``+00:00``), a real calendar date and time, up to nine fractional digits. Whether it
lies within the intake window depends on the clock: a runtime check, not the schema's."""
