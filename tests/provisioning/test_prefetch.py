"""``StatusPrefetch`` on its own: only a final answer read on the wire is handed out, anything else means "read
it yourself", and it never raises."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

from worker.exchange.errors import RetryableError
from worker.exchange.models import TransferDetail
from worker.provisioning.prefetch import StatusPrefetch


def detail(status: str) -> TransferDetail:
    return TransferDetail.model_validate(
        {
            "orderId": "o-1",
            "currency": "USDT",
            "amount": "250",
            "fromUid": "1",
            "fromAccountType": "MAIN",
            "toUid": "2",
            "toAccountType": "MAIN",
            "status": status,
            "createdAt": 1,
        }
    )


def test_a_final_answer_is_handed_out_once() -> None:
    prefetch = StatusPrefetch(threads=1)
    try:
        prefetch.start("o-1", lambda: detail("SUCCESS"))
        got = prefetch.take("o-1", wait_s=5)
        assert got is not None and got.amount == Decimal(250)
        assert prefetch.take("o-1", wait_s=5) is None  # taken: the next confirm reads for itself
    finally:
        prefetch.close()


def test_processing_an_error_or_nothing_started_mean_read_it_yourself() -> None:
    prefetch = StatusPrefetch(threads=2)

    def fails() -> TransferDetail:
        raise RetryableError("request not sent: ConnectError", endpoint="get_transfer")

    try:
        prefetch.start("processing", lambda: detail("PROCESSING"))
        prefetch.start("error", fails)
        assert prefetch.take("processing", wait_s=5) is None
        assert prefetch.take("error", wait_s=5) is None
        assert prefetch.take("never-started", wait_s=5) is None
        prefetch.start("failure", lambda: detail("FAILURE"))
        failed = prefetch.take("failure", wait_s=5)
        assert failed is not None and str(failed.status) == "FAILURE"
    finally:
        prefetch.close()


def test_a_read_still_waiting_for_a_thread_is_cancelled_and_one_on_the_wire_is_waited_for_up_to_the_bound() -> None:
    prefetch = StatusPrefetch(threads=1)
    release = threading.Event()
    on_the_wire = threading.Event()

    def slow() -> TransferDetail:
        on_the_wire.set()
        release.wait(5)
        return detail("SUCCESS")

    read_queued = threading.Event()

    def queued() -> TransferDetail:
        read_queued.set()
        return detail("SUCCESS")

    try:
        prefetch.start("slow", slow)
        assert on_the_wire.wait(5)
        prefetch.start("queued", queued)  # the only thread is busy: not begun
        assert prefetch.take("queued", wait_s=5) is None
        assert prefetch.take("slow", wait_s=0.05) is None  # on the wire past the bound: given up
        release.set()
        assert not read_queued.is_set()
    finally:
        prefetch.close()


def test_only_the_newest_reads_are_kept() -> None:
    prefetch = StatusPrefetch(threads=1, keep=2)
    read = {order_id: threading.Event() for order_id in ("a", "b", "c")}

    def reader(order_id: str) -> Callable[[], TransferDetail]:
        def read_it() -> TransferDetail:
            read[order_id].set()
            return detail("SUCCESS")

        return read_it

    try:
        for order_id in ("a", "b", "c"):
            prefetch.start(order_id, reader(order_id))
        assert read["c"].wait(5)  # every read has begun (one thread, in order)
        assert prefetch.take("a", wait_s=5) is None
        assert prefetch.take("c", wait_s=5) is not None
    finally:
        prefetch.close()


def test_after_close_nothing_is_read_and_nothing_raises() -> None:
    prefetch = StatusPrefetch(threads=1)
    prefetch.start("a", lambda: detail("SUCCESS"))
    prefetch.close()
    assert prefetch.take("a", wait_s=1) is None
    read = threading.Event()

    def late() -> TransferDetail:
        read.set()
        return detail("SUCCESS")

    prefetch.start("b", late)  # a run still going while the process stops: no new pool, no read
    assert prefetch.take("b", wait_s=1) is None
    assert not read.wait(0.2)
