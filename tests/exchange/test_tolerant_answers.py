"""Answers a real KuCoin may plausibly give that its documentation does not pin down: parsed where the meaning is
unambiguous, instead of stalling the customer (or, for a new key, throwing away a secret shown once)."""

from __future__ import annotations

import pytest

from worker.exchange.models import ApiKeyCreated, TransferDetail, TransferStatus


@pytest.mark.parametrize("status", ["success", "Success", "SUCCESS"])
def test_a_transfer_status_in_another_letter_case_is_read(status: str) -> None:
    detail = TransferDetail.model_validate(
        {
            "orderId": "1",
            "currency": "USDT",
            "amount": "10",
            "fromUid": "1",
            "fromAccountType": "MAIN",
            "toUid": "2",
            "toAccountType": "MAIN",
            "status": status,
            "createdAt": 1,
        }
    )
    assert detail.status is TransferStatus.SUCCESS


def test_an_unknown_transfer_status_is_still_an_error() -> None:
    with pytest.raises(ValueError):
        TransferStatus("DONE")


def test_a_new_keys_answer_needs_only_its_key_and_secret() -> None:
    """Without ``permissions``, ``createdAt``, ``uid`` or ``label`` the secret is still taken (they are what we
    asked for); without the secret nothing is."""
    created = ApiKeyCreated.model_validate({"apiKey": "k1", "secretKey": "s3cr3t"})
    assert created.api_key == "k1" and created.secret_key.get_secret_value() == "s3cr3t"
    with pytest.raises(ValueError):
        ApiKeyCreated.model_validate({"apiKey": "k1"})


def test_a_modify_answer_is_never_a_reason_to_doubt_the_write() -> None:
    from worker.exchange.models import modified

    full = modified({"apiKey": "k1", "uid": "9", "permissions": ["Spot"], "ipWhitelist": ["1.2.3.4"], "createdAt": 1})
    assert full.api_key == "k1" and full.permissions == ("spot",)
    assert modified({"apiKey": "k1"}).api_key == "k1", "createdAt missing"
    assert modified(None).api_key is None and modified({"permissions": 7}).api_key is None
