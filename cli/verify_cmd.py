"""``provisioner verify``: check the invariants of exactly-once provisioning, over the simulator's state or the
real exchange's (read through its API)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click
import httpx

from cli.context import JSON_HELP, Context, emit, pass_context, table
from worker.exchange.signing import sign_headers
from worker.settings import KucoinCredentials
from worker.verify import Violation, check, read_events

__all__ = ["verify"]


def key_probe(base_url: str) -> object:
    """A probe that signs ``GET /api/v1/accounts`` with a customer's key: accepted only for the issued secret."""
    client = httpx.Client(base_url=base_url, timeout=10)

    def probe(api_key: str, secret: str, passphrase: str) -> bool:
        credentials = KucoinCredentials(api_key=api_key, api_secret=secret, api_passphrase=passphrase)
        headers = sign_headers(
            credentials, timestamp_ms=int(time.time() * 1000), method="GET", path="/api/v1/accounts", broker=False
        )
        for _ in range(3):  # a probe is a read: a transport hiccup is retried
            try:
                response = client.get("/api/v1/accounts", headers={**headers, "Content-Type": "application/json"})
            except httpx.TransportError:
                continue
            return response.status_code == 200 and response.json().get("code") == "200000"
        return False

    return probe


def run_checks(ctx: Context, events_file: TextIO, sandbox_url: str) -> list[Violation]:
    runtime = ctx.runtime
    app = runtime.app
    state = httpx.get(f"{sandbox_url.rstrip('/')}/sandbox/v1/state", timeout=60).json()
    letters = [d.summary() for d in runtime.dead_letters().list()]
    return check(
        read_events(events_file),
        state,
        app.store.load,
        lambda ref: app.store.journal(ref, count=100_000),
        naming=app.policy.naming,
        keyring=app.keyring,
        probe=key_probe(sandbox_url),  # type: ignore[arg-type]
        funding_caps=app.settings.funding_cap_per_customer,
        daily_caps=app.settings.funding_cap_per_day,
        dead_letters=letters,
    )


def run_exchange_checks(
    ctx: Context, events_file: TextIO, since: str | None, probe_keys: bool
) -> tuple[list[Violation], dict[str, str]]:
    """The same invariants over what the configured exchange shows through its API (``worker.exchange_view``)."""
    from datetime import UTC, datetime

    from handlers.desired import fold
    from worker.exchange_view import exchange_snapshot

    runtime = ctx.runtime
    app = runtime.app
    events = read_events(events_file)
    customers = sorted({e.customer_id for e in events})
    offboarded = [c for c in customers if fold([e for e in events if e.customer_id == c]).offboarded]
    now_ms = int(time.time() * 1000)
    if since is not None:
        since_ms = int(datetime.fromisoformat(since.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)
    else:
        since_ms = min((e.occurred_ns // 1_000_000 for e in events), default=now_ms) - 3_600_000
    state = exchange_snapshot(
        app.exchange,
        app.policy.naming,
        customers,
        app.store.load,
        currencies=app.settings.currencies,
        since_ms=since_ms,
        until_ms=now_ms,
        offboarded=offboarded,
    )
    letters = [d.summary() for d in runtime.dead_letters().list()]
    violations = check(
        events,
        state,
        app.store.load,
        lambda ref: app.store.journal(ref, count=100_000),
        naming=app.policy.naming,
        keyring=app.keyring,
        probe=key_probe(app.settings.spot_base_url) if probe_keys else (lambda *_: True),  # type: ignore[arg-type]
        funding_caps=app.settings.funding_cap_per_customer,
        daily_caps=app.settings.funding_cap_per_day,
        dead_letters=letters,
    )
    return violations, state["unattributed"]


@click.command()
@click.option(
    "--events",
    "events_file",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="The events that were published (JSON Lines; - for stdin).",
)
@click.option(
    "--sandbox",
    "sandbox_url",
    default="http://127.0.0.1:8088",
    show_default=True,
    help="The simulator whose /sandbox/v1/state is the exchange's truth.",
)
@click.option(
    "--exchange",
    "use_exchange",
    is_flag=True,
    help="Read the configured exchange through its API (KUCOIN_*), not a simulator's state.",
)
@click.option(
    "--since", help="With --exchange: read the ledger from this UTC time (default: an hour before the first event)."
)
@click.option(
    "--probe-keys/--no-probe-keys",
    default=None,
    help="Sign a request with each held secret to prove it is the issued one (default: on for the simulator; off "
    "for the exchange, where the keys' IP whitelists refuse our address).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def verify(
    ctx: Context,
    events_file: TextIO,
    sandbox_url: str,
    use_exchange: bool,
    since: str | None,
    probe_keys: bool | None,
    as_json: bool,
) -> None:
    """Check every customer's end state against its events; print the violations; exit 1 on any (2 when the
    exchange's records left part of the money unattributable)."""
    unattributed: dict[str, str] = {}
    if use_exchange:
        violations, unattributed = run_exchange_checks(ctx, events_file, since, bool(probe_keys))
    else:
        violations = run_checks(ctx, events_file, sandbox_url)
    if as_json:
        emit({"violations": [v.__dict__ for v in violations], "unattributed": unattributed}, as_json=True)
    elif violations:
        table(f"{len(violations)} violation(s)", ["customer", "invariant", "detail"], [v.as_row() for v in violations])
    else:
        click.echo("no violations")
    if unattributed and not as_json:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(unattributed.items()))
        click.echo(
            f"the Special Account's ledger moved money it names no order for ({listed}): "
            "double payments among them cannot be ruled out from the exchange's records"
        )
    sys.exit(1 if violations else 2 if unattributed else 0)
