"""Sub-account API keys: create (the only time the secret is shown), list, modify, delete."""

from __future__ import annotations

from collections.abc import Sequence

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import PermanentError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import ApiKey, ApiKeyCreated, ApiKeyModified, Permission, boolean, list_of, modified
from worker.exchange.requests import AddApiKeyRequest, ModifyApiKeyRequest, build

__all__ = ["ApiKeys"]


class ApiKeys:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def add(
        self,
        *,
        uid: str,
        passphrase: str,
        ip_whitelist: Sequence[str],
        permissions: Sequence[Permission],
        label: str,
    ) -> ApiKeyCreated:
        """Add SubAccount API — ``POST /api/v1/broker/nd/account/apikey``; management key; Broker, weight 3.

        Returns the key *with its secret*, which the exchange never shows again. Not idempotent: after a lost
        response, list the keys and delete any carrying ``label`` whose secret you do not hold. Raises
        ``RequestValidationError`` for a label outside 4–32 characters, more than 20 or invalid IPs,
        permissions other than general/spot/futures, or a passphrase outside 7–32 characters.
        """
        request = build(
            AddApiKeyRequest,
            "add_api_key",
            uid=uid,
            passphrase=passphrase,
            ip_whitelist=list(ip_whitelist),
            permissions=list(permissions),
            label=label,
        )
        return self._http.call(ENDPOINTS["add_api_key"], ApiKeyCreated.model_validate, body=request.body())

    def list(self, *, uid: str, api_key: str | None = None) -> tuple[ApiKey, ...]:
        """Get SubAccount API — ``GET /api/v1/broker/nd/account/apikey``; management key; Broker, weight 2.

        All keys of one sub-account (not paginated), optionally only ``api_key``. IPs come back masked.
        """
        query = [("uid", uid)] + ([("apiKey", api_key)] if api_key else [])
        return self._http.call(ENDPOINTS["get_api_keys"], list_of(ApiKey), query=query)

    def modify(
        self,
        *,
        uid: str,
        api_key: str,
        ip_whitelist: Sequence[str],
        permissions: Sequence[Permission],
        label: str,
    ) -> ApiKeyModified:
        """Modify SubAccount API — ``POST /api/v1/broker/nd/account/update-apikey``; Broker, weight 3.

        Replaces the key's whitelist, permissions and label as a whole, so repeating it is harmless. The answer's
        fields are read where they can be (``ApiKeyModified``: a missing field is no reason to doubt the write),
        but an answer of ``false`` (a boolean where the documentation shows the key) says the change was not
        made: ``PermanentError``, for an operator. Raises ``RequestValidationError`` on the same rules as ``add``.
        """
        request = build(
            ModifyApiKeyRequest,
            "modify_api_key",
            uid=uid,
            api_key=api_key,
            ip_whitelist=list(ip_whitelist),
            permissions=list(permissions),
            label=label,
        )
        endpoint = ENDPOINTS["modify_api_key"]
        answer = self._http.call(endpoint, lambda data: data, body=request.body())
        if answer is False:
            raise PermanentError("the exchange answered false: the key was not changed", endpoint=endpoint.name)
        return modified(answer)

    def delete(self, *, uid: str, api_key: str) -> bool:
        """Delete SubAccount API — ``DELETE /api/v1/broker/nd/account/apikey``; Broker, weight 3.

        Parameters travel in the query string. Returns the exchange's boolean: KuCoin documents its type, not what
        ``false`` means (not deleted? deleted already?), so a caller lists the keys before it concludes anything.
        """
        return self._http.call(ENDPOINTS["delete_api_key"], boolean, query=[("uid", uid), ("apiKey", api_key)])
