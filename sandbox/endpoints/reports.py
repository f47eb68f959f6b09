"""Get Broker Rebate (docs/kucoin-api.md §6.4): validates begin/end (YYYYMMDD, at most 6 months apart) and tradeType
("1" spot, "2" futures), then answers ``{url}`` pointing at a CSV that the simulator itself serves at
``/sandbox/v1/rebate/<token>.csv`` for one day (KuCoin answers an S3 link)."""

from __future__ import annotations

from sandbox.context import Context
from sandbox.endpoints.accounts import validate_report_dates
from sandbox.state import RebateJob

__all__ = ["get_rebase"]


def get_rebase(ctx: Context) -> dict[str, str]:
    """GET /api/v1/broker/nd/rebase/download (sic: "rebase") — a one-day CSV link; weight 3."""
    validate_report_dates(ctx, required=True)
    token = ctx.state.ids.hex(32)
    ctx.state.rebates[token] = RebateJob(
        token=token,
        begin=ctx.query.required("begin"),
        end=ctx.query.required("end"),
        trade_type=ctx.query.required("tradeType"),
        created_at=ctx.now_ms,
    )
    return {"url": f"http://{ctx.host}/sandbox/v1/rebate/{token}.csv"}
