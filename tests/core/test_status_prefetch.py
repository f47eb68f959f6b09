"""A just-accepted transfer's status is read while the customer's key is issued (``worker.provisioning.prefetch``):
ready after three calls' time instead of four, with the same evidence, and only a final answer stands."""

from __future__ import annotations

import threading

import httpx

from handlers.records import TransferStatus
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from worker.exchange.models import TransferDetail
from worker.provisioning.prefetch import StatusPrefetch

STATUS = "/api/v3/broker/nd/transfer/detail"
KEY = "/api/v1/broker/nd/account/apikey"


class KeyWaitsForTheStatusRead(httpx.BaseTransport):
    """Holds Add SubAccount API until Get Transfer History has been asked (up to 5 s), and says whether it was."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.status_asked = threading.Event()
        self.key_waited_for_status: list[bool] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == STATUS:
            self.status_asked.set()
        if request.method == "POST" and request.url.path == KEY:
            self.key_waited_for_status.append(self.status_asked.wait(5))
        return self.inner.handle_request(request)


def test_the_status_is_read_while_the_key_is_issued_and_read_once(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    gate = KeyWaitsForTheStatusRead(rig.transport.inner)
    rig.transport.inner = gate
    try:
        ev = events_for("prefetch-1")
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.settle(ref)

        assert gate.key_waited_for_status == [True], "the key was issued before the transfer's status was asked"
        record = rig.record(ref)
        (entry,) = record.transfers.values()
        assert entry.status is TransferStatus.COMMITTED
        assert rig.state()["stats"]["requests"].get("get_transfer_history") == 1
        assert [e["type"] for e in rig.outbound()].count("funding.completed") == 1
    finally:
        rig.close()


def test_a_status_not_final_when_prefetched_is_read_again_and_commits_only_when_final(
    redis_url: str, key_prefix: str
) -> None:
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"transfer_processing_ms": 5_000}))
    try:
        ev = events_for("prefetch-2")
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.run(ref)
        (entry,) = rig.record(ref).transfers.values()
        assert entry.status is TransferStatus.ACCEPTED  # PROCESSING, prefetched or not, commits nothing

        rig.settle(ref)
        (entry,) = rig.record(ref).transfers.values()
        assert entry.status is TransferStatus.COMMITTED
        assert rig.state()["stats"]["requests"]["get_transfer_history"] >= 2
    finally:
        rig.close()


def test_with_the_prefetch_off_the_status_is_read_at_confirm(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_PREFETCH_TRANSFER_STATUS="false")
    gate = KeyWaitsForTheStatusRead(rig.transport.inner)
    gate.status_asked.set()  # let the key through at once; count the reads only
    rig.transport.inner = gate
    try:
        ev = events_for("prefetch-3")
        (ref,) = rig.publish(ev["created"])
        rig.publish(ev["kyc"])
        rig.settle(ref)
        (entry,) = rig.record(ref).transfers.values()
        assert entry.status is TransferStatus.COMMITTED
        assert rig.state()["stats"]["requests"].get("get_transfer_history") == 1
        assert rig.app.reconciler.services.prefetch is None
    finally:
        rig.close()


def test_ready_says_whether_take_would_wait() -> None:
    prefetch = StatusPrefetch(threads=1)
    release = threading.Event()
    try:
        assert not prefetch.ready("o1"), "never started"
        prefetch.start("o1", lambda: (release.wait(5), _detail("SUCCESS"))[1])
        assert not prefetch.ready("o1"), "still on the wire"
        release.set()
        for _ in range(100):
            if prefetch.ready("o1"):
                break
            threading.Event().wait(0.01)
        assert prefetch.ready("o1")
        detail = prefetch.take("o1", wait_s=0)
        assert detail is not None and str(detail.status) == "SUCCESS"
        assert not prefetch.ready("o1"), "taken"
    finally:
        prefetch.close()


def _detail(status: str) -> TransferDetail:
    return TransferDetail.model_validate(
        {
            "orderId": "o1",
            "currency": "USDT",
            "amount": "1",
            "fromUid": "1",
            "fromAccountType": "MAIN",
            "toUid": "2",
            "toAccountType": "TRADE",
            "status": status,
            "createdAt": 1,
        }
    )
