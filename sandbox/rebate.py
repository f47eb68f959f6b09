"""The CSV behind Get Broker Rebate's download URL. KuCoin does not document its columns (docs/kucoin-api.md
§6.4), so the columns and figures are invented, deterministic from the seed: one row per sub-account per day on
which it "traded" (about half the days), with volume, fee and the broker's share in USDT."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sandbox.state import ExchangeState, RebateJob, fmt_amount, seeded_fraction

__all__ = ["REBATE_COLUMNS", "REBATE_TTL_MS", "render_rebate_csv"]

REBATE_COLUMNS = (
    "Date", "BrokerUID", "UID", "AccountName", "BizLine", "Volume(USDT)", "TotalFee(USDT)", "BrokerRebate(USDT)",
)  # fmt: skip
REBATE_TTL_MS = 86_400_000
"""The download link is valid for one day (documented)."""
_FEE_RATE = Decimal("0.001")
_BROKER_SHARE = Decimal("0.2")
_CENT = Decimal("0.01")
_SATOSHI = Decimal("0.00000001")


def _day(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC).date()


def render_rebate_csv(job: RebateJob, state: ExchangeState) -> str:
    """The CSV text for ``job``: rows for each day in [begin, end] and each sub-account existing that day."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REBATE_COLUMNS)
    biz_line = "Spot" if job.trade_type == "1" else "Futures"
    day, last = _day(job.begin), _day(job.end)
    while day <= last:
        day_end_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000) + 86_400_000
        for sub in state.subaccounts.values():
            if sub.created_at >= day_end_ms:
                continue
            fraction = seeded_fraction(state.seed, "rebate", sub.uid, day.isoformat(), job.trade_type)
            if fraction < 0.5:
                continue
            volume = (Decimal(str(fraction)) * 20000).quantize(_CENT)
            fee = (volume * _FEE_RATE).quantize(_SATOSHI)
            writer.writerow(
                [
                    day.strftime("%Y%m%d"),
                    state.broker.uid,
                    sub.uid,
                    sub.account_name,
                    biz_line,
                    fmt_amount(volume),
                    fmt_amount(fee),
                    fmt_amount((fee * _BROKER_SHARE).quantize(_SATOSHI)),
                ]
            )
        day += timedelta(days=1)
    return out.getvalue()
