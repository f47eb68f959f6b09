"""``provisioner sandbox``: run the KuCoin ND-broker simulator on loopback in the foreground.

Credentials come from the same ``KUCOIN_*`` variables the worker reads (development defaults when unset), so a
worker started with no configuration talks to this simulator once ``KUCOIN_BROKER_BASE_URL`` and
``KUCOIN_SPOT_BASE_URL`` point at the printed URL. Every switch is documented in docs/sandbox.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from sandbox import Exchange, SandboxConfig, SandboxCredentials, SandboxServer, serve_forever

__all__ = ["sandbox_command"]

_KINDS = ("5xx", "drop", "429", "slow")


def _fault_rates(fault_rate: float, explicit: dict[str, float | None]) -> dict[str, float]:
    """``--fault-rate`` split evenly across the four kinds; a per-kind option overrides its share."""
    return {
        kind: fault_rate / len(_KINDS) if explicit[kind] is None else float(explicit[kind] or 0.0) for kind in _KINDS
    }


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it loopback).")
@click.option("--port", default=8088, show_default=True, type=click.IntRange(0, 65535), help="0 = any free port.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of ids, faults and shares.")
@click.option(
    "--config-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON config (SandboxConfig.to_dict form: balances, fixtures, ...); options below override it.",
)
@click.option("--quota", type=click.IntRange(min=1), help="Broker pool quota per window  [default: 2000]")
@click.option("--management-quota", type=click.IntRange(min=1), help="Management pool quota  [default: 2000]")
@click.option("--spot-quota", type=click.IntRange(min=1), help="Spot pool quota  [default: 4000]")
@click.option("--window-ms", type=click.IntRange(min=1), help="Rate-limit window  [default: 30000]")
@click.option("--latency-ms", type=click.IntRange(min=0), help="Fixed latency before processing  [default: 0]")
@click.option("--latency-jitter-ms", type=click.IntRange(min=0), help="Uniform extra latency  [default: 0]")
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Combined fault rate, split evenly across 5xx, drop, 429 and slow.",
)
@click.option("--rate-5xx", type=click.FloatRange(0, 1), help="Rate of 500/503 before commit.")
@click.option("--rate-drop", type=click.FloatRange(0, 1), help="Rate of responses lost after commit.")
@click.option("--rate-429", type=click.FloatRange(0, 1), help="Rate of 429 bursts.")
@click.option("--rate-slow", type=click.FloatRange(0, 1), help="Rate of slow responses after commit.")
@click.option("--slow-ms", type=click.IntRange(min=0), help="Delay of a slow response  [default: 15000]")
@click.option("--burst-429-ms", type=click.IntRange(min=0), help="Length of a 429 burst  [default: 1000]")
@click.option(
    "--duplicate-client-oid",
    type=click.Choice(["dedupe", "reject", "accept"]),
    help="Repeated transfer clientOid  [default: dedupe]",
)
@click.option("--taken-name-share", type=click.FloatRange(0, 1), help="Share of names taken elsewhere  [default: 0]")
@click.option("--taken-name", "taken_names", multiple=True, help="A name taken by another broker (repeatable).")
@click.option("--enforce-name-rules/--no-enforce-name-rules", default=None, help="7-32 letters+digits  [default: on]")
@click.option("--max-keys-per-subaccount", type=click.IntRange(min=0), help="Live keys per sub-account  [default: 5]")
@click.option(
    "--broker-info-requires-dates/--no-broker-info-requires-dates",
    default=None,
    help="Get Broker Info needs begin/end/tradeType  [default: off]",
)
@click.option("--subaccount-order", type=click.Choice(["asc", "desc"]), help="Get SubAccount order  [default: asc]")
@click.option("--kyc-review-ms", type=click.IntRange(min=0), help="PROCESS -> PASS/REJECT delay  [default: 2000]")
@click.option("--kyc-reject-share", type=click.FloatRange(0, 1), help="Share of rejected KYC  [default: 0]")
@click.option("--transfer-processing-ms", type=click.IntRange(min=0), help="PROCESSING duration  [default: 0]")
@click.option("--max-account-size", type=click.IntRange(min=0), help="Sub-account cap  [default: unlimited]")
@click.option(
    "--require-partner-headers/--no-require-partner-headers",
    default=None,
    help="Reject ND calls without partner headers (400201)  [default: off]",
)
@click.option(
    "--business-error-status", type=click.Choice(["200", "400"]), help="HTTP status of business errors  [default: 200]"
)
@click.option(
    "--enforce-ip-whitelist/--no-enforce-ip-whitelist",
    default=None,
    help="Sub-account keys only from whitelisted IPs (400006)  [default: off]",
)
@click.option(
    "--transfer-credit",
    type=click.Choice(["at_once", "on_completion"]),
    help="When a transfer's money reaches its target: with the debit, or when it leaves PROCESSING  [default: at_once]",
)
@click.option(
    "--transfer-failure-share",
    type=click.FloatRange(0, 1),
    help="Share of accepted transfers that move nothing and end FAILURE  [default: 0]",
)
@click.option(
    "--listing-lag-ms", type=click.IntRange(min=0), help="Delay before new sub-accounts/keys are listed  [default: 0]"
)
@click.option(
    "--ledger-context",
    type=click.Choice(["order_id", "client_oid", "none"]),
    help="What a BROKER_TRANSFER ledger entry's context carries  [default: order_id]",
)
@click.option("--ledger-lag-ms", type=click.IntRange(min=0), help="Delay before a ledger entry is listed  [default: 0]")
@click.option(
    "--ledger-max-range-ms", type=click.IntRange(min=1), help="Largest ledger endAt - startAt  [default: 86400000]"
)
@click.option(
    "--activity-rate",
    type=click.FloatRange(min=0),
    help="Customer events per second per sub-account with a live key  [default: 0 = off]",
)
@click.option("--activity-deposit-share", type=click.FloatRange(0, 1), help="Share of deposits  [default: 0.3]")
@click.option(
    "--activity-max-trade-fraction", type=click.FloatRange(0, 1), help="Largest share sold by a trade  [default: 0.5]"
)
@click.option(
    "--activity-deposit-max",
    "activity_deposit_max",
    multiple=True,
    metavar="CURRENCY=AMOUNT",
    help="Largest customer deposit of a currency (repeatable; replaces the defaults).",
)
def sandbox_command(**options: Any) -> None:
    """Serve a simulated KuCoin ND-broker API (broker + spot paths + /sandbox admin) until SIGINT/SIGTERM."""
    try:
        config = _build_config(options)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    credentials = SandboxCredentials.from_env(os.environ)
    exchange = Exchange(config, credentials)

    def announce(server: SandboxServer) -> None:
        click.echo(f"KuCoin ND-broker sandbox listening on {server.url}", err=False)
        click.echo(f"  management key: {credentials.api_key}   trading key: {credentials.trading_api_key}")
        click.echo(f"  partner: {credentials.partner}   broker name: {credentials.broker_name}")
        if credentials.defaulted:
            click.echo(f"  development defaults used for: {', '.join(credentials.defaulted)}")
        click.echo(f"  admin: {server.url}/sandbox/v1/state")
        settings = config.to_dict()
        settings.pop("initial_balances")
        click.echo("  switches: " + json.dumps(settings, sort_keys=True))
        click.echo("Press Ctrl+C to stop.", err=False)

    serve_forever(exchange, options["host"], options["port"], on_ready=announce)
    click.echo("sandbox stopped")


def _currency_amount(item: str) -> tuple[str, str]:
    """``USDT=1000`` -> ("USDT", "1000"); the amount stays a string (checked by the config)."""
    currency, sep, amount = item.partition("=")
    if not sep or not currency.strip() or not amount.strip():
        raise ValueError(f"--activity-deposit-max takes CURRENCY=AMOUNT, got {item!r}")
    return currency.strip(), amount.strip()


def _build_config(options: dict[str, Any]) -> SandboxConfig:
    data: dict[str, Any] = {}
    if options["config_file"] is not None:
        data = json.loads(options["config_file"].read_text())
        if not isinstance(data, dict):
            raise ValueError("--config-file must contain a JSON object")
    data["seed"] = options["seed"]
    plain = {
        "quota": "broker_quota", "management_quota": "management_quota", "spot_quota": "spot_quota",
        "window_ms": "window_ms", "duplicate_client_oid": "duplicate_client_oid",
        "taken_name_share": "taken_name_share", "enforce_name_rules": "enforce_name_rules",
        "max_keys_per_subaccount": "max_keys_per_subaccount",
        "broker_info_requires_dates": "broker_info_requires_dates", "subaccount_order": "subaccount_order",
        "kyc_review_ms": "kyc_review_ms", "kyc_reject_share": "kyc_reject_share",
        "transfer_processing_ms": "transfer_processing_ms", "transfer_credit": "transfer_credit",
        "max_account_size": "max_account_size",
        "require_partner_headers": "require_partner_headers", "enforce_ip_whitelist": "enforce_ip_whitelist",
        "transfer_failure_share": "transfer_failure_share", "listing_lag_ms": "listing_lag_ms",
        "ledger_context": "ledger_context", "ledger_lag_ms": "ledger_lag_ms",
        "ledger_max_range_ms": "ledger_max_range_ms",
    }  # fmt: skip
    for option, name in plain.items():
        if options[option] is not None:
            data[name] = options[option]
    if options["taken_names"]:
        data["taken_names"] = list(options["taken_names"])
    if options["business_error_status"] is not None:
        data["business_error_status"] = int(options["business_error_status"])
    activity: dict[str, Any] = dict(data.get("activity") or {})
    for option, name in (
        ("activity_rate", "rate_per_s"),
        ("activity_deposit_share", "deposit_share"),
        ("activity_max_trade_fraction", "max_trade_fraction"),
    ):
        if options[option] is not None:
            activity[name] = options[option]
    if options["activity_deposit_max"]:
        activity["deposit_max"] = dict(_currency_amount(item) for item in options["activity_deposit_max"])
    if activity:
        data["activity"] = activity
    faults: dict[str, Any] = dict(data.get("faults") or {})
    for option in ("latency_ms", "latency_jitter_ms", "slow_ms", "burst_429_ms"):
        if options[option] is not None:
            faults[option] = options[option]
    explicit = {kind: options[f"rate_{kind}"] for kind in _KINDS}
    if options["fault_rate"] or any(v is not None for v in explicit.values()):
        for kind, rate in _fault_rates(options["fault_rate"], explicit).items():
            faults[f"rate_{kind}"] = rate
    data["faults"] = faults
    return SandboxConfig.from_dict(data)
