"""``ExchangeClient``: the exchange port the worker uses, grouped by endpoint family.

Built from ``Settings`` by ``ExchangeClient.from_settings``; ``transport`` swaps the network for the
simulator's in-process transport in tests. The management key and the trading key stay apart: ND-broker
endpoints sign with the first (plus partner headers), the balance read with the second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

from worker.exchange.apikeys import ApiKeys
from worker.exchange.assets import Assets
from worker.exchange.broker import Broker
from worker.exchange.http import KucoinHttp, Observer, RateGate
from worker.exchange.kyc import Kyc
from worker.exchange.scope import CallScope
from worker.exchange.subaccounts import SubAccounts
from worker.exchange.transfers import Transfers
from worker.settings import Settings

__all__ = ["ExchangeClient"]


class ExchangeClient:
    """All exchange calls of the worker. ``sub_accounts``, ``api_keys``, ``transfers``, ``assets``,
    ``broker`` and ``kyc`` each hold one family's endpoints. Close it (or use it as a context manager);
    ``scoped(scope)`` is a view of it whose every call carries ``scope`` (``worker.exchange.scope``)."""

    def __init__(self, http: KucoinHttp) -> None:
        self.http = http
        self.sub_accounts = SubAccounts(http)
        self.api_keys = ApiKeys(http)
        self.transfers = Transfers(http)
        self.assets = Assets(http)
        self.broker = Broker(http)
        self.kyc = Kyc(http)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        gate: RateGate | None = None,
        observers: Sequence[Observer] = (),
        clock: Callable[[], float] = time.time,
    ) -> ExchangeClient:
        """A client with the settings' hosts, keys, time-outs, pool size and proxy."""
        http = KucoinHttp(
            broker_base_url=settings.broker_base_url,
            spot_base_url=settings.spot_base_url,
            management=settings.management_credentials(),
            trading=settings.trading_credentials(),
            timeout=httpx.Timeout(
                connect=settings.http_connect_timeout,
                read=settings.http_read_timeout,
                write=settings.http_write_timeout,
                pool=settings.http_pool_timeout,
            ),
            limits=httpx.Limits(
                max_connections=settings.http_max_connections,
                max_keepalive_connections=settings.http_max_connections,
            ),
            transport=transport,
            proxy=settings.http_proxy.get_secret_value() if settings.http_proxy is not None else None,
            gate=gate,
            observers=observers,
            clock=clock,
        )
        return cls(http)

    def scoped(self, scope: CallScope) -> ExchangeClient:
        """The same client (one transport, one gate) with every call made under ``scope``: who it is for, its
        lane, its send deadline."""
        return ExchangeClient(self.http.scoped(scope))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ExchangeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
