"""A sub-account created by another of our workers while a listing is paged makes up for the row that listing lost
at a page boundary: the listing passes the ``totalNum`` check, the lost create is concluded "never happened", and
the customer gets a second sub-account.

Scenario: bulk onboarding. The broker holds 100 sub-accounts created within one second, customer C's is the
101st; C's Add SubAccount is applied but its answer is lost (the process dies). Get SubAccount's order is
``[UNCONFIRMED]`` and ``createdAt`` has second resolution (docs/kucoin-api.md §6.7), so rows of one second may come
back in another order on another page's query (the premise of daa06e7: page 1 oldest first, later pages newest
first within the second; C's row falls on neither page). Meanwhile the fleet keeps onboarding: between page 1 and
page 2 of each listing, another worker creates the sub-account of another customer (a later second, so it is
listed last, the simulator's default ascending order). Page 1 says ``totalNum`` 101, page 2 says 102.

What happens: ``Listing`` takes the *smallest* ``totalNum`` of the pass (101) as what must be seen, and counts the
distinct rows seen: 100 of the tie second + the new one = 101. "Complete": C's name is "not found", the lost create
is settled not committed and sent again; KuCoin refuses the name as taken; the next listing is masked the same way
(another concurrent create), so the refusal reads "taken by someone else", the next name is created and C has two
sub-accounts (the first an orphan, which an ND broker cannot delete).

Why it is wrong: never two sub-accounts for one customer (README's exactly-once effects). ``Listing``'s docstring
says rows added meanwhile "raise" ``totalNum`` and "a row we missed does not" — but a row added meanwhile that the
pass *sees* raises the distinct count as well, and offsets the row it missed: the check proves only that the pass
saw as many rows as the exchange counted at its start, not that it saw all of those.

Suggested fix: require the distinct rows to reach the *largest* ``totalNum`` of the pass (the count at its end):
every row added during the pass is then either seen (and counted on both sides) or a shortfall that the next pass
(joined with this one) resolves; only continuous creation across every pass stays short, which is a retry, never a
wrong "not found". The same holds for the ledger window (``Assets._window``): an entry made visible during the pass
behind the reader (``ledger_lag``) offsets a tie lost at a boundary.

Likelihood: low to medium — it needs the boundary gap of daa06e7 (bulk onboarding makes createdAt ties common) and a
concurrent create during each of two listings; bulk onboarding is exactly when other workers create sub-accounts
concurrently, so the two conditions come together. The effect is permanent.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.core.harness import Crash, Rig, events_for
from worker.exchange import RetryableError

LISTING = "/api/v1/broker/nd/account"


@dataclass
class TiesAndAConcurrentCreate(httpx.BaseTransport):
    """Get SubAccount (no uid filter) ordered by ``createdAt`` at second resolution, the rows of one second oldest
    first on page 1 and newest first on later pages (daa06e7's premise); right after each page 1 is served, another
    worker's Add SubAccount lands (``concurrent`` times in all), a second later. Everything else passes through."""

    inner: httpx.BaseTransport
    rig: Rig
    concurrent: int = 2
    added: list[str] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        params = request.url.params
        if request.method != "GET" or request.url.path != LISTING or params.get("uid"):
            return response
        response.read()
        payload = json.loads(response.content)
        if payload.get("code") != "200000":
            return response
        page = int(params.get("currentPage", "1"))
        size = int(params.get("pageSize", "20"))
        rows: list[dict[str, Any]] = list(self.rig.state()["subAccounts"])  # in creation order
        order = list(enumerate(rows))
        if page == 1:
            order.sort(key=lambda p: (p[1]["createdAt"] // 1000, p[0]))
        else:
            order.sort(key=lambda p: (p[1]["createdAt"] // 1000, -p[0]))
        chosen = [r for _, r in order][(page - 1) * size : page * size]
        data = payload["data"]
        data["items"] = [
            {
                "accountName": r["accountName"],
                "uid": r["uid"],
                "createdAt": r["createdAt"] // 1000 * 1000,
                "level": r["level"],
            }
            for r in chosen
        ]
        data["totalNum"] = len(rows)
        data["totalPage"] = -(-len(rows) // size)
        if page == 1 and len(self.added) < self.concurrent:
            # another worker of the fleet onboards another customer meanwhile
            self.rig.clock.advance_ms(1_500)
            name = f"fleet{len(self.added):03d}x"
            self.rig.app.exchange.sub_accounts.add(account_name=name)
            self.added.append(name)
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)


def test_a_concurrent_create_masks_a_page_gap_and_a_second_sub_account_is_made(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        for n in range(100):  # other customers of the broker, onboarded in the same second
            rig.app.exchange.sub_accounts.add(account_name=f"other{n:03d}x")

        ev = events_for("adv48-mask", funding=())
        ref = rig.publish(ev["created"])[0]
        rig.transport.crash("POST", LISTING, when="after", nth=101)  # ours is applied, its answer lost
        with pytest.raises(Crash):
            rig.run(ref)
        assert len(rig.state()["subAccounts"]) == 101

        fake = TiesAndAConcurrentCreate(rig.transport.inner, rig)
        rig.transport.inner = fake
        with contextlib.suppress(RetryableError):  # a fixed worker: the listing is short, nothing concluded
            rig.settle(ref)
        rig.transport.inner = fake.inner  # the exchange's order settles, the fleet is done
        rig.settle(ref)

        others = {f"other{n:03d}x" for n in range(100)} | set(fake.added)
        ours = [s["accountName"] for s in rig.state()["subAccounts"] if s["accountName"] not in others]
        journal = [(e.get("action"), e.get("how") or e.get("account_name")) for e in rig.app.store.journal(ref)]
        assert len(ours) == 1, f"{len(ours)} sub-accounts for one customer: {ours}; journal: {journal}"
    finally:
        rig.close()
