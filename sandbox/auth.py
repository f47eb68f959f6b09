"""Request authentication, in KuCoin's order (docs/kucoin-api.md §2, §3.3).

1. any of KC-API-KEY / KC-API-SIGN / KC-API-TIMESTAMP / KC-API-PASSPHRASE missing -> 400001 (HTTP 400)
2. unknown or deleted key -> 400003 (401)
3. KC-API-KEY-VERSION: "2" and "3" accepted; "1" or absent -> 400008; anything else -> 400009 (400)
4. KC-API-TIMESTAMP not an integer, or |now - ts| >= tolerance (5000 ms) -> 400002 (400)
5. wrong passphrase (HMAC with the key's secret) -> 400004 (401)
6. wrong KC-API-SIGN -> 400005 (401)
7. (switch ``enforce_ip_whitelist``) sub-account key called from an IP outside its whitelist -> 400006 (403)
8. key family not allowed on the endpoint -> 400007 (403)
9. ND endpoints only: KC-API-PARTNER present but unknown -> 400200; KC-API-PARTNER-VERIFY "true" and the
   partner sign wrong or missing -> 400201; (switch ``require_partner_headers``) partner headers absent ->
   400201. Without VERIFY a bad partner sign is ignored and the call counts as unattributed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import errors
from sandbox.config import SandboxConfig, SandboxCredentials
from sandbox.context import Caller, KeyFamily
from sandbox.errors import ApiError
from sandbox.routes import Route
from sandbox.signing import partner_sign, passphrase_header, request_sign, signatures_equal
from sandbox.state import ExchangeState
from sandbox.wire import SimRequest

__all__ = ["AuthError", "authenticate"]


class AuthError(Exception):
    """Authentication failed with ``error``; ``uid`` is the key owner when the key was recognised (so the
    response can still carry that caller's rate-limit headers)."""

    def __init__(self, error: ApiError, uid: str | None = None) -> None:
        super().__init__(error.msg)
        self.error = error
        self.uid = uid


@dataclass(frozen=True)
class _Key:
    uid: str
    family: KeyFamily
    secret: str
    passphrase: str
    ip_whitelist: tuple[str, ...] = ()


def _resolve(api_key: str, credentials: SandboxCredentials, state: ExchangeState) -> _Key | None:
    broker = state.broker.uid
    if api_key == credentials.api_key:
        return _Key(broker, "management", credentials.api_secret, credentials.api_passphrase)
    if api_key == credentials.trading_api_key:
        return _Key(broker, "trading", credentials.trading_api_secret, credentials.trading_api_passphrase)
    record = state.api_keys.get(api_key)
    if record is None or not record.live:
        return None
    return _Key(record.uid, "sub", record.secret, record.passphrase, tuple(record.ip_whitelist))


def authenticate(
    request: SimRequest,
    route: Route,
    *,
    credentials: SandboxCredentials,
    state: ExchangeState,
    config: SandboxConfig,
    now_ms: int,
) -> Caller:
    """The authenticated caller of ``request``; raises ``AuthError`` with KuCoin's code otherwise."""
    api_key = request.header("KC-API-KEY")
    sign = request.header("KC-API-SIGN")
    timestamp = request.header("KC-API-TIMESTAMP")
    passphrase = request.header("KC-API-PASSPHRASE")
    if not (api_key and sign and timestamp and passphrase):
        raise AuthError(errors.missing_headers())
    key = _resolve(api_key, credentials, state)
    if key is None:
        raise AuthError(errors.key_not_found())
    version = (request.header("KC-API-KEY-VERSION") or "1").strip()
    if version == "1":
        raise AuthError(errors.v1_key(), key.uid)
    if version not in ("2", "3"):
        raise AuthError(errors.bad_key_version(), key.uid)
    if not timestamp.isdigit() or abs(now_ms - int(timestamp)) >= config.timestamp_tolerance_ms:
        raise AuthError(errors.invalid_timestamp(), key.uid)
    if not signatures_equal(passphrase_header(key.secret, key.passphrase), passphrase):
        raise AuthError(errors.invalid_passphrase(), key.uid)
    expected = request_sign(
        key.secret,
        timestamp=timestamp,
        method=request.method,
        path=request.path,
        raw_query=request.query,
        body=request.body,
    )
    if not signatures_equal(expected, sign):
        raise AuthError(errors.invalid_sign(), key.uid)
    if (
        config.enforce_ip_whitelist
        and key.family == "sub"
        and key.ip_whitelist
        and request.client_ip not in key.ip_whitelist
    ):
        raise AuthError(errors.invalid_ip(request.client_ip), key.uid)
    if key.family not in route.allowed:
        raise AuthError(errors.access_denied(), key.uid)
    attributed = True
    if route.family == "nd":
        attributed = _check_partner(
            request, api_key=api_key, timestamp=timestamp, credentials=credentials, config=config, uid=key.uid
        )
    return Caller(uid=key.uid, family=key.family, api_key=api_key, attributed=attributed)


def _check_partner(
    request: SimRequest,
    *,
    api_key: str,
    timestamp: str,
    credentials: SandboxCredentials,
    config: SandboxConfig,
    uid: str,
) -> bool:
    """Partner-header rules of DOC-INSTR; returns whether the call is attributed to the broker."""
    partner = request.header("KC-API-PARTNER")
    received = request.header("KC-API-PARTNER-SIGN")
    verify = (request.header("KC-API-PARTNER-VERIFY") or "").strip().lower() == "true"
    if partner and partner != credentials.partner:
        raise AuthError(errors.unknown_partner(), uid)
    sign_ok = bool(partner) and signatures_equal(
        partner_sign(credentials.broker_key, timestamp, credentials.partner, api_key), received
    )
    if verify and not sign_ok:
        raise AuthError(errors.invalid_partner_sign(), uid)
    if config.require_partner_headers and not (partner and received):
        raise AuthError(errors.invalid_partner_sign(), uid)
    return sign_ok and request.header("KC-BROKER-NAME") == credentials.broker_name
