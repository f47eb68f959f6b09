"""The broker itself: its info (sub-account count, level) and the rebate report's download link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import BrokerInfo, RebateLink
from worker.exchange.requests import yyyymmdd

__all__ = ["Broker"]

MAX_RANGE = timedelta(days=183)
"""Rebate and info ranges may span at most six months."""


def _trade_type(value: str, endpoint: str) -> str:
    if value not in ("1", "2"):
        raise RequestValidationError(
            "trade_type must be '1' (spot) or '2' (futures)", field="trade_type", endpoint=endpoint
        )
    return value


def _range(begin: str, end: str, endpoint: str) -> list[tuple[str, str]]:
    start, stop = (
        yyyymmdd(begin, field="begin", endpoint=endpoint),
        yyyymmdd(end, field="end", endpoint=endpoint),
    )
    if stop < start or stop - start > MAX_RANGE:
        raise RequestValidationError(
            "end must be on or after begin and at most 6 months later", field="end", endpoint=endpoint
        )
    return [("begin", begin), ("end", end)]


class Broker:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def info(self, *, trade_type: str = "1", begin: str | None = None, end: str | None = None) -> BrokerInfo:
        """Get Broker Info — ``GET /api/v1/broker/nd/info``; Broker pool, weight 2.

        ``begin``/``end`` (``YYYYMMDD``): the spec marks them required, KuCoin's own e2e test omits them, and they
        do not affect ``accountSize``. Not given, yesterday (UTC) is sent for both: accepted either way, and never
        a day in the future on an exchange clock a little behind ours.
        """
        endpoint = ENDPOINTS["get_broker_info"].name
        if not (begin and end):
            yesterday = (datetime.fromtimestamp(self._http.now(), tz=UTC) - timedelta(days=1)).strftime("%Y%m%d")
            begin = end = yesterday
        query = _range(begin, end, endpoint)
        query.append(("tradeType", _trade_type(trade_type, endpoint)))
        return self._http.call(ENDPOINTS["get_broker_info"], BrokerInfo.model_validate, query=query)

    def rebate_url(self, *, begin: str, end: str, trade_type: str = "1") -> str:
        """Get Broker Rebate — ``GET /api/v1/broker/nd/rebase/download`` (sic); Broker pool, weight 3.

        Returns a link to a CSV report, valid for one day.
        """
        endpoint = ENDPOINTS["get_rebate_url"].name
        query = [*_range(begin, end, endpoint), ("tradeType", _trade_type(trade_type, endpoint))]
        return self._http.call(ENDPOINTS["get_rebate_url"], RebateLink.model_validate, query=query).url
