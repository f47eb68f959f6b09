"""Parameter validation with KuCoin-style failures: code 400100 and a message naming the field.

``Params`` wraps either the decoded query string (all values are strings) or the JSON body (typed values).
Every accessor raises ``ApiError`` 400100 (a business error, HTTP status from ``business_error_status``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from sandbox.errors import business

__all__ = ["Params", "parse_query"]

_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def parse_query(raw_query: str) -> dict[str, str]:
    """Decode a query string; the first occurrence of a repeated name wins; blank values are kept."""
    result: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        result.setdefault(name, value)
    return result


class Params:
    """Typed, validated access to request parameters."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def has(self, name: str) -> bool:
        return self._values.get(name) not in (None, "")

    def string(self, name: str, *, required: bool = True, min_len: int = 0, max_len: int | None = None) -> str | None:
        """A string; empty counts as absent. Integers are accepted for id-like fields sent as JSON numbers."""
        value = self._values.get(name)
        if value is None or value == "":
            if required:
                raise business(f"{name} is required")
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise business(f"{name} must be a string")
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            if max_len is None:
                bound = f"at least {min_len}"
            else:
                bound = f"{min_len}-{max_len}" if min_len else f"at most {max_len}"
            raise business(f"{name} length must be {bound}")
        return value

    def required(self, name: str, **kwargs: Any) -> str:
        value = self.string(name, required=True, **kwargs)
        assert value is not None
        return value

    def choice(self, name: str, options: Collection[str], *, required: bool = True) -> str | None:
        value = self.string(name, required=required)
        if value is not None and value not in options:
            raise business(f"{name} must be one of {', '.join(options)}")
        return value

    def one_of(self, name: str, options: Collection[str]) -> str:
        """A required value from ``options``."""
        value = self.choice(name, options, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
        """An integer (query string digits or JSON integer) within bounds; ``default`` when absent."""
        value = self._values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise business(f"{name} must be an integer")
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise business(f"{name} must be {bound}")
        return number

    def string_list(self, name: str, *, max_items: int) -> list[str]:
        value = self._values.get(name)
        if value is None:
            raise business(f"{name} is required")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise business(f"{name} must be an array of strings")
        if len(value) > max_items:
            raise business(f"{name} must have at most {max_items} entries")
        return list(value)

    def ip_list(self, name: str, *, max_items: int = 20) -> list[str]:
        """KuCoin's ipWhitelist: at most 20 entries, each an IPv4 or IPv6 address (docs/kucoin-api.md §6.8)."""
        ips = self.string_list(name, max_items=max_items)
        for ip in ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise business(f"{name} contains an invalid IP address: {ip}") from None
        return ips

    def amount(self, name: str, *, precision: int) -> Decimal:
        """A positive decimal string (JSON numbers accepted, as OLD-EB sent one) with at most ``precision``
        decimals."""
        value = self._values.get(name)
        if value is None or value == "":
            raise business(f"{name} is required")
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = repr(value)
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            raise business(f"{name} must be a positive decimal string")
        amount = Decimal(value)
        if amount <= 0:
            raise business(f"{name} must be greater than 0")
        exponent = amount.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > precision:
            raise business(f"{name} precision must not exceed {precision} decimals")
        return amount

    def day(self, name: str, *, fmt: str = "%Y%m%d", required: bool = True) -> date | None:
        """A calendar date in ``fmt`` (``YYYYMMDD`` for the broker reports, ``%Y-%m-%d`` for KYC)."""
        value = self.string(name, required=required)
        if value is None:
            return None
        try:
            parsed = datetime.strptime(value, fmt).date()
        except ValueError:
            parsed = None
        if parsed is None or parsed.strftime(fmt) != value:
            shown = fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
            raise business(f"{name} must be a date in the format {shown}")
        return parsed
