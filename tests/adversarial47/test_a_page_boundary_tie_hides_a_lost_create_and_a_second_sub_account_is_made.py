"""A Get SubAccount listing whose order of same-second rows differs from one page's query to the next skips a row
at the page boundary: the sub-account of a lost create is never found, and a second one is made for the customer.

Scenario: the broker holds 100 sub-accounts of other customers, created (bulk onboarding) within the same second as
customer C's. Get SubAccount's order is ``[UNCONFIRMED]`` and its rows carry ``createdAt`` rounded to the second
(docs/kucoin-api.md §6.7: "The example's ``createdAt`` is rounded to the second (1729819382000 where Add answered
…908). Order and how soon a new sub-account is listed are ``[UNCONFIRMED]``"): the plausible implementation is an
``ORDER BY createdAt LIMIT/OFFSET`` on a second-resolution column, where rows of one second come back in whatever
order each query's plan yields (a well-known property of SQL paging on a non-unique sort key). Here page 1's query
returns the second's rows oldest first and page 2's newest first: page 1 holds the 100 others, page 2 repeats the
oldest one, C's sub-account (the 101st) is on neither. Every page is internally valid (``totalNum`` 101,
``totalPage`` 2, 100 + 1 items).

What happens: C's Add SubAccount is applied but its answer is lost (the process dies). ``resolve_sub_account``
pages through the listing (``_find_by_name``), does not find the name, settles "not committed" and creates again
under the same name; KuCoin refuses ("accountName already exists", documented: names are unique exchange-wide);
the next listing misses it again, so the refusal is read as "taken by someone else", the next name attempt is
created, and C gets a second sub-account. The first is an orphan nobody records.

Why it is wrong: never two sub-accounts for one customer (README's exactly-once effects). The listing itself said
it was incomplete: 101 rows announced (``totalNum``), 100 distinct uids seen — ``Page.total_num`` is parsed but
never read by any caller (``_find_by_name``, ``SubAccounts.iter_all`` behind recovery's index, the audit's
re-index and ``exchange_traces``; the latter even compares Get Broker Info's count with ``len(listed)``, which a
duplicate keeps equal).

Suggested fix: make a full listing prove itself complete: collect rows by uid across pages and, when the number of
distinct uids is below the last page's ``totalNum`` (or ``totalNum`` changed between pages), read the whole listing
again (optionally with another page size, which moves the boundary) and, if still short, treat the search as
undecided (own wait / retryable), never as "not found". ``_find_by_name`` should go through ``iter_all`` so there
is one place that enforces it; a name refused as taken after a lost create of that very name deserves the same
doubt. The
spot ledger reader (``Assets.ledger_entries``: "Entries are only ever added, so paging misses none") rests on the same
stable-order assumption for the money path (500 entries a page; ties there need one millisecond, so rarer): worth
the same distinct-ids-versus-``totalNum`` check (not reproduced here).

Likelihood: low to medium — it needs more than one page of sub-accounts (any broker past 100 customers) and a
boundary falling inside a second's batch (bulk onboarding makes that common), plus a lost create answer; the
effect (a second sub-account, which cannot be deleted) is permanent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.core.harness import Crash, Rig, events_for
from worker.exchange import RetryableError

LISTING = "/api/v1/broker/nd/account"


@dataclass
class SecondResolutionPaging(httpx.BaseTransport):
    """Get SubAccount (no uid filter) ordered by ``createdAt`` at second resolution, rows of one second oldest
    first on page 1 and newest first on later pages; everything else (and the exchange's auth, quotas and counters)
    goes through ``inner`` untouched."""

    inner: httpx.BaseTransport
    rig: Rig

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
        listed_until = self.rig.exchange.now_ms() - self.rig.exchange.config.listing_lag_ms
        rows = [r for r in rows if r["createdAt"] <= listed_until]
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
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)


def test_a_page_boundary_tie_hides_a_lost_create_and_a_second_sub_account_is_made(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix)
    try:
        rig.transport.inner = SecondResolutionPaging(rig.transport.inner, rig)
        for n in range(100):  # other customers of the broker, onboarded in the same second
            rig.app.exchange.sub_accounts.add(account_name=f"other{n:03d}x")
        others = {f"other{n:03d}x" for n in range(100)}

        ev = events_for("adv47-tie", funding=())
        ref = rig.publish(ev["created"])[0]
        # the 101st create (ours) is applied; its answer is lost with the process
        rig.transport.crash("POST", LISTING, when="after", nth=101)
        with pytest.raises(Crash):
            rig.run(ref)
        assert len(rig.state()["subAccounts"]) == 101

        # the fix: while no pass over the listing holds every row the exchange counts, nothing is concluded (this
        # fake hides the newest row from every page size: the run waits and tries again)
        with pytest.raises(RetryableError, match="listing is inconsistent"):
            rig.settle(ref)
        ours = [s["accountName"] for s in rig.state()["subAccounts"] if s["accountName"] not in others]
        assert len(ours) == 1, f"{len(ours)} sub-accounts for one customer: {ours}"

        rig.transport.inner = rig.transport.inner.inner  # the exchange's order settles
        rig.settle(ref)

        ours = [s["accountName"] for s in rig.state()["subAccounts"] if s["accountName"] not in others]
        steps_taken = [e.get("action") for e in rig.app.store.journal(ref)]
        assert len(ours) == 1, f"{len(ours)} sub-accounts for one customer: {ours}; journal: {steps_taken}"
        record = rig.record(ref)
        assert record.sub_account is not None and record.sub_account.account_name == ours[0]
    finally:
        rig.close()
