"""Endpoint descriptors and path matching.

Each ``Route`` names one KuCoin endpoint (the universal SDK's method name, used in stats and per-endpoint fault
rates), its family (``nd``: management key + partner headers; ``spot``: trading or sub-account keys), its
rate-limit pool and weight (docs/kucoin-api.md §4.3), and its handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.context import Context, KeyFamily

__all__ = ["Route", "match"]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    """Exact path, or a template with ``{name}`` segments (one path segment each)."""
    family: Literal["nd", "spot"]
    pool: str
    weight: int
    handler: Callable[[Context], Any]
    allowed: tuple[KeyFamily, ...] = ("management",)
    """Key families allowed to call the endpoint; any other authenticated key gets 400007."""

    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$")


def match(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for (method, path) and its path parameters; None for an unknown pair (-> 404000)."""
    for route in routes:
        if route.method != method:
            continue
        if "{" not in route.path:
            if route.path == path:
                return route, {}
            continue
        found = route.pattern().match(path)
        if found:
            return route, found.groupdict()
    return None
