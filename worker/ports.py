"""What the services outside a worker's run (recovery, re-sealing, an operator's decision) need of the app in
common: its settings, Redis with the key layout, the customers' store and their due schedule. Each service's own
ports extend this Protocol; ``worker.bootstrap.App`` satisfies them all structurally."""

from __future__ import annotations

from typing import Protocol

import redis

from worker.settings import Settings
from worker.store.customers import CustomerStore
from worker.store.due import DueSchedule
from worker.store.keys import Keys

__all__ = ["StorePorts"]


class StorePorts(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def redis(self) -> redis.Redis: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def store(self) -> CustomerStore: ...
    @property
    def due(self) -> DueSchedule: ...
