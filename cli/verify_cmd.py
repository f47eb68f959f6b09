"""``provisioner verify``: check the invariants of exactly-once provisioning over the simulator's state."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click
import httpx

from cli.context import Context, emit, pass_context, table
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
        dead_letters=letters,
    )


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
@click.option("--json", "as_json", is_flag=True)
@pass_context
def verify(ctx: Context, events_file: TextIO, sandbox_url: str, as_json: bool) -> None:
    """Check every customer's end state against its events; print the violations; exit 1 on any."""
    violations = run_checks(ctx, events_file, sandbox_url)
    if as_json:
        emit([v.__dict__ for v in violations], as_json=True)
    elif violations:
        table(f"{len(violations)} violation(s)", ["customer", "invariant", "detail"], [v.as_row() for v in violations])
    else:
        click.echo("no violations")
    sys.exit(1 if violations else 0)
