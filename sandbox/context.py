"""What an endpoint handler receives: the state, the config in effect, the clock reading and the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sandbox.config import SandboxConfig
from sandbox.params import Params
from sandbox.state import ExchangeState

__all__ = ["Caller", "Context"]

KeyFamily = Literal["management", "trading", "sub"]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the uid owning the key and the key's family.

    ``management``: the broker's ND-broker management key (ND endpoints). ``trading``: the broker's Special
    Account trading key (spot reads). ``sub``: a key issued by Add SubAccount API (its sub-account's reads).
    ``attributed`` is False for ND calls without valid partner attribution (stats only).
    """

    uid: str
    family: KeyFamily
    api_key: str
    attributed: bool = True


@dataclass
class Context:
    """One request as seen by an endpoint handler. Handlers run under the exchange lock."""

    state: ExchangeState
    config: SandboxConfig
    now_ms: int
    caller: Caller
    query: Params
    body: Params
    host: str
    path_params: dict[str, str] = field(default_factory=dict)
