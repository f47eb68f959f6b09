"""Proxy KYC: submit a sub-account's documents, then follow its status to PASS or REJECT."""

from __future__ import annotations

from collections.abc import Sequence

from worker.exchange.endpoints import ENDPOINTS
from worker.exchange.errors import RequestValidationError
from worker.exchange.http import KucoinHttp
from worker.exchange.models import KycStatus, Page, list_of
from worker.exchange.requests import KycSubmission, check_range

__all__ = ["Kyc"]


class Kyc:
    def __init__(self, http: KucoinHttp) -> None:
        self._http = http

    def submit(self, submission: KycSubmission) -> None:
        """Submit KYC — ``POST /api/kyc/ndBroker/proxyClient/submit``; Broker pool, weight unpublished (1).

        ``submission`` is already validated (``build(KycSubmission, ...)``). Status moves NONE → PROCESS.
        """
        self._http.call(ENDPOINTS["submit_kyc"], body=submission.body())

    def status(self, *, client_uids: Sequence[str]) -> tuple[KycStatus, ...]:
        """Get KYC Status — ``GET /api/kyc/ndBroker/proxyClient/status/list``; Broker pool.

        One entry per uid asked for (comma-separated on the wire), not paginated.
        """
        if not client_uids or not all(u.isdigit() for u in client_uids):
            raise RequestValidationError(
                "client_uids must be one or more numeric uids", field="client_uids", endpoint="get_kyc_status"
            )
        return self._http.call(
            ENDPOINTS["get_kyc_status"], list_of(KycStatus), query=[("clientUids", ",".join(client_uids))]
        )

    def status_page(self, *, page_number: int = 1, page_size: int = 100) -> Page[KycStatus]:
        """Get KYC Status List — ``GET /api/kyc/ndBroker/proxyClient/status/page``; Broker pool.

        The request says ``pageNumber``, the response ``currentPage``. ``page_size`` 1–100.
        """
        endpoint = ENDPOINTS["get_kyc_status_page"]
        check_range(page_number, 1, 1_000_000, field="page_number", endpoint=endpoint.name)
        check_range(page_size, 1, 100, field="page_size", endpoint=endpoint.name)
        return self._http.call(
            endpoint,
            Page[KycStatus].model_validate,
            query=[("pageNumber", str(page_number)), ("pageSize", str(page_size))],
        )
