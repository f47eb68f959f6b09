"""Campaigns against the exchange's windows (issue 15 items 1 and 5), for ``bench/bench.py``.

- ``campaign``: 90 customers at 300 weight per 30 s, 100 ms latency — about one minute of quota — and the long
  campaign (the ``quota`` scenario's customers, 400 by default, at 2000 / 30 s). Efficiency is the run's own
  baseline, the ideal time (useful weight / quota × 30 s, 7 weight per customer), over the time the run took from
  its first publish to its last customer converged. The simulator's window starts at the first request, as
  KuCoin's does; publishing waits until any window the workers' start-up requests opened has reset, so the
  campaign's first request opens the window (otherwise the run would start with part of a window already behind it).
- ``groups``: two worker groups, each its own ``provisioner worker`` with its own settings (threads; one of them
  believes the quota is twice what it is), against one Redis (one key prefix) and one exchange: efficiency as
  above, 429s, and whether any customer was worked by both groups at once — from each group's canonical log
  lines (each message's customer, its reconcile outcome, and when the run started and how long it took: its
  lock was held within; a run that found the customer locked, ``busy``, did not work it) — and whether the
  exchange holds exactly one sub-account, one key and one transfer per customer (two groups working a customer
  at once would send its writes twice).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import redis

import bench as b  # bench/bench.py: this directory is the script's, first on sys.path

WINDOW_S = 30


def efficiency(result: dict[str, Any], *, quota: int) -> dict[str, Any]:
    """The run's ideal time (useful weight / quota × window) over the time it took."""
    useful = b.WEIGHT_PER_CUSTOMER * int(result["converged"])
    ideal = useful / quota * WINDOW_S
    took = float(result["elapsed_s"])
    return {"useful_weight": useful, "ideal_s": round(ideal, 2), "took_s": took, "efficiency": round(ideal / took, 3)}


def run_campaign(
    redis_url: str, *, customers: int, quota: int, processes: int, threads: int, timeout_s: float
) -> dict[str, Any]:
    """One campaign at ``quota`` and 100 ms latency through ``bench.run_worker``, with its efficiency."""
    result = b.run_worker(
        redis_url,
        customers=customers,
        latency_ms=100,
        quota=quota,
        processes=processes,
        threads=threads,
        timeout_s=timeout_s,
        fresh_window=True,
    )
    return {**result, **efficiency(result, quota=quota)}


def run_groups(redis_url: str, *, customers: int, quota: int, timeout_s: float) -> dict[str, Any]:
    """Two worker groups (1 process × 16 threads with the right quota; 1 process × 24 threads that believes the
    quota is twice as large) on one Redis and one exchange."""
    with b.sandbox(quota=quota, latency_ms=100) as url:
        env = b.base_env(redis_url, url, quota=quota)
        prefix = env["PROVISIONER_REDIS_PREFIX"]
        group_env = {
            "a": {**env, "PROVISIONER_LOG_LEVEL": "INFO"},
            "b": {
                **env,
                "PROVISIONER_LOG_LEVEL": "INFO",
                "PROVISIONER_BROKER_QUOTA": str(2 * quota),
                "PROVISIONER_METRICS_PORT": str(b.free_port()),
            },
        }
        logs = {g: f"/tmp/bench-group-{g}-{prefix}.log" for g in group_env}
        runtime, pub = b.publisher(env)
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        evs = b.events(customers, prefix)
        with (
            b.worker(group_env["a"], processes=1, threads=16, log_path=logs["a"]),
            b.worker(group_env["b"], processes=1, threads=24, log_path=logs["b"]),
        ):
            b.wait_out_window(url)
            started = time.time()
            for event in evs:
                pub.publish(event)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                stats = r.hgetall(f"{prefix}:stats")
                if int(stats.get("keys_issued", 0)) >= customers and int(stats.get("transfers_fund", 0)) >= customers:
                    break
                time.sleep(0.2)
        state = httpx.get(f"{url}/sandbox/v1/state", timeout=30).json()
        runtime.close()
    converged = b._converged_times(r, prefix)
    r.close()
    b.forget(redis_url, prefix)
    elapsed = max(converged.values(), default=time.time()) - started
    runs = {g: _runs(Path(path)) for g, path in logs.items()}
    overlaps = _overlaps(runs["a"], runs["b"])
    worked = {g: {ref for ref, _, _ in rs} for g, rs in runs.items()}
    result = {
        "customers": customers,
        "converged": len(converged),
        "quota": quota,
        "elapsed_s": round(elapsed, 2),
        "exchange_429s": state["stats"]["rateLimited"],
        "customers_worked": {g: len(refs) for g, refs in worked.items()},
        "customers_worked_by_both_in_turn": len(worked["a"] & worked["b"]),
        "overlapping_runs": len(overlaps),
        "max_overlap_ms": round(max((o for _, o in overlaps), default=0.0), 1),
        "exchange_duplicates": _duplicates(state) + max(0, len(state["subAccounts"]) - customers),
    }
    return {**result, **efficiency(result, quota=quota)}


def _runs(log: Path) -> list[tuple[str, float, float]]:
    """(customer ref, start, end) of each message that worked a customer (not ``busy``), from a group's log."""
    out = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") != "message processed" or entry.get("reconcile") in (None, "busy"):
            continue
        ref, at, took = entry.get("customer_ref"), entry.get("reconcile_at"), entry.get("reconcile_s")
        if ref is None or at is None or took is None:
            continue
        out.append((str(ref), float(at), float(at) + float(took)))
    return out


def _overlaps(a: list[tuple[str, float, float]], b_runs: list[tuple[str, float, float]]) -> list[tuple[str, float]]:
    """(customer, overlap ms) for every pair of runs of one customer, one per group, that overlap in time."""
    by_ref: dict[str, list[tuple[float, float]]] = {}
    for ref, start, end in a:
        by_ref.setdefault(ref, []).append((start, end))
    found = []
    for ref, start, end in b_runs:
        for other_start, other_end in by_ref.get(ref, ()):
            overlap = min(end, other_end) - max(start, other_start)
            if overlap > 0:
                found.append((ref, overlap * 1000))
    return found


def _duplicates(state: dict[str, Any]) -> int:
    """Sub-accounts with more than one API key or more than one transfer in (the simulator's state)."""
    keys: dict[str, int] = {}
    for key in state.get("apiKeys", []):
        uid = str(key.get("uid"))
        keys[uid] = keys.get(uid, 0) + 1
    transfers: dict[str, int] = {}
    for transfer in state.get("transfers", []):
        uid = str(transfer.get("specialUid") or transfer.get("toUid") or "")
        transfers[uid] = transfers.get(uid, 0) + 1
    return sum(1 for n in keys.values() if n > 1) + sum(1 for uid, n in transfers.items() if uid and n > 1)


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table rows of these scenarios."""
    out = []
    for name, label, target in (
        ("campaign", "campaign 1 min (300 / 30 s, {n} cust)", "≥ 0.95, 0 × 429"),
        ("long_campaign", "long campaign (2000 / 30 s, {n} cust)", "≥ 0.98, 0 × 429"),
    ):
        if name in results:
            c = results[name]
            out.append(
                (
                    label.format(n=c.get("customers", "?")),
                    f"took {c['took_s']} s, ideal {c['ideal_s']} s",
                    f"efficiency {c['efficiency']:.3f}, {c['exchange_429s']} x 429",
                    target,
                )
            )
    if "groups" in results:
        g = results["groups"]
        out.append(
            (
                "two worker groups (300 / 30 s, 90 cust)",
                f"took {g['took_s']} s, ideal {g['ideal_s']} s",
                f"efficiency {g['efficiency']:.3f}, {g['exchange_429s']} x 429",
                "≥ 0.95, 0 × 429",
            )
        )
        out.append(
            (
                "  worked by both at once",
                f"{g['overlapping_runs']} overlapping runs (max {g['max_overlap_ms']} ms)",
                f"worked a/b/both in turn {g['customers_worked']['a']}/{g['customers_worked']['b']}/"
                f"{g['customers_worked_by_both_in_turn']}, duplicates {g['exchange_duplicates']}",
                "0 at once",
            )
        )
    return out
