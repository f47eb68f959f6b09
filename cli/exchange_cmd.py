"""``provisioner exchange``: read-only looks at the exchange for on-call (never a secret), and the one-off probe of
what the exchange does with a repeated transfer clientOid (which moves a minimal amount, only with --yes)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cli.context import JSON_HELP, Context, emit, pass_context, table
from worker.exchange import ExchangeClient, ExchangeError

__all__ = ["exchange"]


@contextmanager
def _client(ctx: Context) -> Iterator[ExchangeClient]:
    with ExchangeClient.from_settings(ctx.settings) as client:
        try:
            yield client
        except ExchangeError as exc:
            raise click.ClickException(f"{exc.kind}: {exc}") from None


def _json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(fn)


@click.group()
def exchange() -> None:
    """Read the exchange (broker info, sub-accounts, keys, transfers, KYC, rebates)."""


@exchange.command()
@_json_option
@pass_context
def info(ctx: Context, as_json: bool) -> None:
    """Get Broker Info: sub-accounts created, the limit, broker level."""
    with _client(ctx) as client:
        data = client.broker.info(trade_type="1").model_dump()
    if as_json:
        emit(data, as_json=True)
    else:
        table(
            "broker",
            ["sub-accounts", "limit", "level"],
            [(data["account_size"], data["max_account_size"] or "unlimited", data["level"])],
        )


@exchange.command("sub-accounts")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--page-size", default=20, show_default=True, type=click.IntRange(1, 100))
@click.option("--uid", help="Only this sub-account.")
@_json_option
@pass_context
def sub_accounts(ctx: Context, page: int, page_size: int, uid: str | None, as_json: bool) -> None:
    """Get SubAccount (one page)."""
    with _client(ctx) as client:
        result = client.sub_accounts.page(current_page=page, page_size=page_size, uid=uid)
    if as_json:
        emit(result.model_dump(), as_json=True)
        return
    table(
        f"sub-accounts, page {result.current_page}/{result.total_page} ({result.total_num} in all)",
        ["uid", "name", "created (ms)", "level"],
        [(s.uid, s.account_name, s.created_at, s.level) for s in result.items],
    )


@exchange.command()
@click.argument("uid")
@_json_option
@pass_context
def keys(ctx: Context, uid: str, as_json: bool) -> None:
    """Get SubAccount API: a sub-account's keys (IPs masked by KuCoin; no secrets exist here)."""
    with _client(ctx) as client:
        rows = client.api_keys.list(uid=uid)
    if as_json:
        emit([k.model_dump() for k in rows], as_json=True)
        return
    table(
        f"keys of {uid}",
        ["api key", "label", "permissions", "ip whitelist", "created (ms)"],
        [(k.api_key, k.label, ",".join(k.permissions), ",".join(k.ip_whitelist), k.created_at) for k in rows],
    )


@exchange.command()
@click.argument("order_id")
@_json_option
@pass_context
def transfer(ctx: Context, order_id: str, as_json: bool) -> None:
    """Get Transfer History: one transfer's status."""
    with _client(ctx) as client:
        detail = client.transfers.get(order_id=order_id).model_dump(mode="json")
    if as_json:
        emit(detail, as_json=True)
    else:
        table(f"transfer {order_id}", list(detail), [list(detail.values())])


@exchange.command()
@click.argument("uids", nargs=-1, required=True)
@_json_option
@pass_context
def kyc(ctx: Context, uids: tuple[str, ...], as_json: bool) -> None:
    """Get KYC Status of one or more sub-account uids."""
    with _client(ctx) as client:
        rows = client.kyc.status(client_uids=list(uids))
    if as_json:
        emit([r.model_dump(mode="json") for r in rows], as_json=True)
        return
    table("KYC", ["uid", "status", "reject reason"], [(r.client_uid, r.status.value, r.reject_reason) for r in rows])


@exchange.command()
@click.argument("uid")
@_json_option
@pass_context
def balances(ctx: Context, uid: str, as_json: bool) -> None:
    """A sub-account's balances (read with the Special Account's trading key)."""
    with _client(ctx) as client:
        result = client.assets.sub_account_balances(uid=uid)
    if as_json:
        emit(result.model_dump(mode="json"), as_json=True)
        return
    rows = [("MAIN", b.currency, b.balance, b.available, b.holds) for b in result.main_accounts]
    rows += [("TRADE", b.currency, b.balance, b.available, b.holds) for b in result.trade_accounts]
    table(f"balances of {uid}", ["wallet", "currency", "balance", "available", "holds"], rows)


@exchange.command()
@click.option("--begin", required=True, help="YYYYMMDD")
@click.option("--end", required=True, help="YYYYMMDD (at most 6 months after begin)")
@click.option(
    "--trade-type", type=click.Choice(["1", "2"]), default="1", show_default=True, help="1 = spot, 2 = futures"
)
@_json_option
@pass_context
def rebate(ctx: Context, begin: str, end: str, trade_type: str, as_json: bool) -> None:
    """Get Broker Rebate: the download link of the rebate report (valid one day)."""
    with _client(ctx) as client:
        url = client.broker.rebate_url(begin=begin, end=end, trade_type=trade_type)
    if as_json:
        emit({"url": url}, as_json=True)
    else:
        click.echo(url)


@exchange.command("probe-client-oid")
@click.option("--currency", default="USDT", show_default=True, help="Currency of the probe transfers.")
@click.option(
    "--amount",
    default="0.00000001",
    show_default=True,
    help="Amount of each probe transfer (the smallest the exchange takes).",
)
@click.option("--yes", is_flag=True, help="Move the money (without: show what the probe does and costs).")
@click.option(
    "--ledger-wait", default=120.0, show_default=True, help="Seconds to wait for the ledger to list the transfer."
)
@_json_option
@pass_context
def probe_client_oid_cmd(
    ctx: Context, currency: str, amount: str, yes: bool, ledger_wait: float, as_json: bool
) -> None:
    """Find out what the exchange does with a repeated transfer clientOid, and what its ledger shows (once, against
    the real exchange, at the smallest amount). It moves money: without --yes it only says what it would do."""
    from decimal import Decimal, InvalidOperation

    from worker.bootstrap import policy_from
    from worker.probe import probe_client_oid

    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise click.BadParameter("must be a decimal amount", param_hint="--amount") from None
    if not value.is_finite() or value <= 0:
        raise click.BadParameter("must be positive", param_hint="--amount")
    settings = ctx.settings
    naming = policy_from(settings).naming
    cost = (
        f"creates (once, kept: KuCoin cannot delete sub-accounts) the probe sub-account {naming.probe_account_name()}, "
        f"transfers {value} {currency} into it twice under one clientOid (three times if the exchange executes the "
        f"repeat), reads the Special Account's ledger for up to {ledger_wait:g} s, and moves everything back"
    )
    if not yes:
        click.echo(f"the probe {cost}. Run again with --yes against {settings.broker_base_url}.")
        sys.exit(1)
    with _client(ctx) as client:
        report = probe_client_oid(
            client,
            naming,
            currency=currency.upper(),
            amount=value,
            broker_wallet=settings.funding_from_wallet,
            ledger_wait_s=ledger_wait,
        )
    data = {
        "behaviour": report.behaviour,
        "detail": report.detail,
        "ledger_context": report.ledger_context,
        "ledger_lag_ms": report.ledger_lag_ms,
        "sub_account": report.sub_account,
        "orders": report.transfers,
        "moved_back": str(report.moved_back),
        "settings": report.settings(),
    }
    if as_json:
        emit(data, as_json=True)
        return
    click.echo(f"repeated clientOid: {report.behaviour} ({report.detail})")
    lag = "not listed within the wait" if report.ledger_lag_ms is None else f"listed after ~{report.ledger_lag_ms} ms"
    click.echo(f"Special Account ledger: context {report.ledger_context}, {lag}")
    click.echo(f"moved back {report.moved_back} {currency}; set:")
    for name, value_ in report.settings().items():
        click.echo(f"  {name}={value_}")
