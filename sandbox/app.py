"""``Exchange``: the core of the simulator, one KuCoin ND broker behind both adapters.

``handle(request)`` runs one request through KuCoin's pipeline: route (unknown -> 404000) -> latency (a real
sleep, before the lock) -> authentication (``sandbox.auth``) -> Content-Type of POSTs (415000) -> fault draw
(429 burst or 5xx, both before anything is committed) -> rate limit (429000, nothing deducted) -> parameter
validation and business rules (400100, HTTP ``business_error_status``) -> commit -> response. When a ``drop``
or ``slow`` fault was drawn, the outcome (success or business error) carries a directive for the adapter.
Everything after the latency runs under one lock, so the state stays consistent under concurrent adapters.
``/sandbox/`` paths go to the admin API (``sandbox.admin``) and never see faults.

Customer activity (``sandbox.activity``) is applied lazily from the injected clock: before every /api request
(first thing under the lock), before a credit or a config change (so the old switches govern the past), and on
``run_activity()``. Reading the state does not apply it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sandbox import errors
from sandbox.activity import ACTIVITY_KINDS, CustomerActivity
from sandbox.auth import AuthError, authenticate
from sandbox.config import WALLETS, SandboxConfig, SandboxCredentials
from sandbox.context import Context
from sandbox.endpoints import ROUTES
from sandbox.errors import SUCCESS, ApiError
from sandbox.faults import FaultInjector
from sandbox.params import Params, parse_query
from sandbox.ratelimit import RateLimiter, RateStatus
from sandbox.routes import Route, match
from sandbox.state import ExchangeState, fmt_amount
from sandbox.wire import Directive, SimOutcome, SimRequest, json_body

if TYPE_CHECKING:
    from sandbox.transport import SandboxTransport

__all__ = ["Exchange"]

_JSON_HEADERS = (("Content-Type", "application/json"),)


class Exchange:
    """A stateful, thread-safe simulation of KuCoin's ND-broker REST API for one broker.

    ``clock`` returns epoch seconds (inject a fake one to test time-based behaviour without sleeping);
    ``sleep`` is used for injected latency only.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        credentials: SandboxCredentials | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config if config is not None else SandboxConfig()
        _check_endpoint_names(self._config)
        self._credentials = credentials if credentials is not None else SandboxCredentials.from_env({})
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.RLock()
        self._state = ExchangeState(
            broker_uid=self._config.broker_uid,
            initial_balances=self._config.initial_balances,
            seed=self._config.seed,
        )
        self._limiter = RateLimiter()
        self._faults = FaultInjector(self._config.seed)
        self._requests: Counter[str] = Counter()
        self._responses: Counter[str] = Counter()
        self._rate_limited = 0
        self._unattributed = 0
        self._activity = CustomerActivity(self._config.seed, self.now_ms())

    # --- public API -----------------------------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        return self._config

    @property
    def credentials(self) -> SandboxCredentials:
        return self._credentials

    @property
    def broker_uid(self) -> str:
        return self._state.broker.uid

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def transport(self) -> SandboxTransport:
        """An in-process ``httpx`` transport serving this exchange (``httpx.Client(transport=...)``)."""
        from sandbox.transport import SandboxTransport  # transport imports this module

        return SandboxTransport(self)

    def update_config(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``patch`` (JSON form, see ``SandboxConfig.merged``) into the switches and faults at runtime.
        Returns the new config as JSON; raises ``ValueError`` naming a bad field (nothing changes then)."""
        with self._lock:
            config = self._config.merged(patch)
            _check_endpoint_names(config)
            self._run_activity()
            self._config = config
            return config.to_dict()

    def run_activity(self) -> dict[str, int]:
        """Apply the customer activity due up to now (``config.activity``); returns this call's events by kind
        (``trades``, ``deposits``, ``skipped``)."""
        with self._lock:
            return self._run_activity()

    def credit(self, uid: str, currency: str, wallet: str, amount: str | Decimal, *, deposit: bool = False) -> Decimal:
        """Add ``amount`` (negative to debit) to ``uid``'s ``wallet`` — a customer deposit or trading result.

        ``uid`` may be the broker's or one of its sub-accounts. With ``deposit`` (a positive amount) a SUCCESS
        deposit record is added for the deposit endpoints and a DEPOSIT entry to the ledger; without it, the
        change is an adjustment no endpoint explains. Returns the new balance; raises ``ValueError`` for an
        unknown uid, wallet or currency, a malformed amount, or a balance that would go negative.
        """
        if wallet not in WALLETS:
            raise ValueError(f"wallet must be one of {', '.join(WALLETS)}")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"amount {amount!r} is not a decimal") from None
        if not value.is_finite():
            raise ValueError("amount must be finite")
        with self._lock:
            if currency not in self._config.currency_precision:
                raise ValueError(f"currency {currency} is not known")
            self._run_activity()
            try:
                return self._state.credit(uid, currency, wallet, value, now_ms=self.now_ms(), deposit=deposit)
            except ApiError as exc:
                raise ValueError(exc.msg) from None

    def state_snapshot(self) -> dict[str, Any]:
        """The whole state as JSON (served at ``GET /sandbox/v1/state``). Never contains secrets or
        passphrases; amounts are strings."""
        with self._lock:
            now = self.now_ms()
            state = self._state
            state.settle_credits(now)
            return {
                "broker": {"uid": state.broker.uid, "balances": state.broker.balances_json()},
                "subAccounts": [
                    {
                        "uid": s.uid,
                        "accountName": s.account_name,
                        "createdAt": s.created_at,
                        "level": s.level,
                        "balances": s.balances_json(),
                    }
                    for s in state.subaccounts.values()
                ],
                "apiKeys": [
                    {
                        "uid": k.uid,
                        "apiKey": k.api_key,
                        "label": k.label,
                        "permissions": list(k.permissions),
                        "ipWhitelist": list(k.ip_whitelist),
                        "createdAt": k.created_at,
                        "deletedAt": k.deleted_at,
                    }
                    for k in state.api_keys.values()
                ],
                "transfers": [
                    {
                        "orderId": t.order_id,
                        "clientOid": t.client_oid,
                        "currency": t.currency,
                        "amount": fmt_amount(t.amount),
                        "direction": t.direction,
                        "accountType": t.account_type,
                        "specialUid": t.special_uid,
                        "specialAccountType": t.special_account_type,
                        "status": t.status(now),
                        "reason": t.reason(now),
                        "createdAt": t.created_at,
                    }
                    for t in state.transfers.values()
                ],
                "ledger": [{"uid": e.uid, **e.to_json()} for e in state.ledger.entries],
                "kyc": [
                    {"clientUid": uid, "status": k.status(now), "rejectReason": k.reason(now)}
                    for uid, k in state.kyc.items()
                ],
                "stats": {
                    "requests": dict(self._requests),
                    "responses": dict(self._responses),
                    "faults": dict(self._faults.counts),
                    "rateLimited": self._rate_limited,
                    "unattributed": self._unattributed,
                    "activity": dict(self._activity.counts),
                },
                "config": self._config.to_dict(),
            }

    def rate_limits(self) -> dict[str, dict[str, int]]:
        """The broker key's window in each pool, as its headers would say now (``resetMs`` 0: no window running);
        served at ``GET /sandbox/v1/ratelimit``; reading it costs no quota."""
        with self._lock:
            now, uid = self.now_ms(), self._state.broker.uid
            out = {}
            for pool in ("Broker", "Management", "Spot"):
                quota = self._config.quota(pool)
                status = self._limiter.peek(uid, pool, quota=quota, window_ms=self._config.window_ms, now_ms=now)
                out[pool] = {"limit": status.limit, "remaining": status.remaining, "resetMs": status.reset_ms}
            return out

    def handle(self, request: SimRequest) -> SimOutcome:
        """Answer one request (see the module docstring for the pipeline)."""
        if request.path.startswith("/sandbox/"):
            from sandbox.admin import handle_admin  # admin imports this module

            return handle_admin(self, request)
        found = match(ROUTES, request.method, request.path)
        if found is None:
            with self._lock:
                self._run_activity()
                return self._finish(errors.not_found(), ())
        route, path_params = found
        with self._lock:
            latency_ms = self._faults.latency_ms(self._config.faults)
        if latency_ms:
            self._sleep(latency_ms / 1000)
        with self._lock:
            return self._process(route, path_params, request)

    # --- internals used by the admin API --------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def state(self) -> ExchangeState:
        """The live domain state (hold ``lock`` while using it)."""
        return self._state

    # --- pipeline -------------------------------------------------------------------------------------------

    def _run_activity(self) -> dict[str, int]:
        """What happened on the exchange by now without us: transfers completing (``transfer_credit``), then the
        customers' activity."""
        self._state.settle_credits(self.now_ms())
        done = self._activity.run(self._state, self._config, self.now_ms())
        return {kind: done[kind] for kind in ACTIVITY_KINDS}

    def _process(self, route: Route, path_params: dict[str, str], request: SimRequest) -> SimOutcome:
        self._run_activity()
        config = self._config
        now_ms = self.now_ms()
        self._requests[route.name] += 1
        quota = config.quota(route.pool)
        try:
            caller = authenticate(
                request, route, credentials=self._credentials, state=self._state, config=config, now_ms=now_ms
            )
        except AuthError as failure:
            headers = self._peek(failure.uid, route, now_ms) if failure.uid else ()
            return self._finish(failure.error, headers)
        if not caller.attributed:
            self._unattributed += 1
        if request.method == "POST" and not _is_json(request.header("Content-Type")):
            return self._finish(errors.unsupported_media_type(), self._peek(caller.uid, route, now_ms))
        decision = self._faults.decide(route.name, (caller.uid, route.pool), config.faults, now_ms)
        if decision.kind == "429":
            self._rate_limited += 1
            burst = RateStatus(False, quota, 0, decision.burst_reset_ms)
            return self._finish(errors.too_many_requests(), burst.headers())
        if decision.kind == "5xx":
            return self._finish(errors.internal_error(decision.status_5xx), self._peek(caller.uid, route, now_ms))
        rate = self._limiter.consume(
            caller.uid, route.pool, route.weight, quota=quota, window_ms=config.window_ms, now_ms=now_ms
        )
        if not rate.allowed:
            self._rate_limited += 1
            return self._finish(errors.too_many_requests(), rate.headers())
        try:
            ctx = Context(
                state=self._state,
                config=config,
                now_ms=now_ms,
                caller=caller,
                query=Params(parse_query(request.query)),
                body=Params(_json_object(request) if request.method == "POST" else {}),
                host=request.header("Host") or "127.0.0.1",
                path_params=path_params,
            )
            data = route.handler(ctx)
        except ApiError as error:
            outcome = self._finish(error, rate.headers())
        else:
            self._responses[SUCCESS] += 1
            body = json_body({"code": SUCCESS, "data": data})
            outcome = SimOutcome(200, _JSON_HEADERS + rate.headers(), body)
        if decision.kind == "drop":
            return replace(outcome, directive=Directive(kind="drop", drop_as=decision.drop_as))
        if decision.kind == "slow":
            return replace(outcome, directive=Directive(kind="slow", delay_ms=config.faults.slow_ms))
        return outcome

    def _peek(self, uid: str, route: Route, now_ms: int) -> tuple[tuple[str, str], ...]:
        config = self._config
        status = self._limiter.peek(
            uid, route.pool, quota=config.quota(route.pool), window_ms=config.window_ms, now_ms=now_ms
        )
        return status.headers()

    def _finish(self, error: ApiError, headers: tuple[tuple[str, str], ...]) -> SimOutcome:
        self._responses[error.code] += 1
        status = error.status if error.status is not None else self._config.business_error_status
        return SimOutcome(status, _JSON_HEADERS + headers, json_body({"code": error.code, "msg": error.msg}))


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == "application/json"


def _json_object(request: SimRequest) -> dict[str, Any]:
    """The POST body as a JSON object (empty body = {}); anything else is 400100."""
    if not request.body.strip():
        return {}
    try:
        value = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise errors.business("Invalid JSON body") from None
    if not isinstance(value, dict):
        raise errors.business("request body must be a JSON object")
    return value


def _check_endpoint_names(config: SandboxConfig) -> None:
    """Per-endpoint fault rates must name real endpoints (catches typos that would silently do nothing)."""
    known = {route.name for route in ROUTES}
    unknown = sorted(set(config.faults.per_endpoint) - known)
    if unknown:
        raise ValueError(f"faults.per_endpoint: unknown endpoint names {unknown}; known: {sorted(known)}")
