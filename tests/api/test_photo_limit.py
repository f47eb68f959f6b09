"""``PROVISIONER_MAX_KYC_PHOTO_BYTES`` bounds what one approval may store, at every door: the HTTP API, publish and
the worker's intake refuse a larger photo naming it; the setting cannot exceed KuCoin's 2 MiB."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from handlers.events import MAX_PHOTO_BYTES
from tests.api.live import Upstream, approval, live_api
from tests.core.harness import Rig, events_for, kyc_documents
from worker.intake import Refused
from worker.settings import Settings, SettingsError

pytestmark = pytest.mark.redis
LIMIT = "20000"


def photo(decoded_bytes: int) -> str:
    return "data:image/png;base64," + base64.b64encode(b"\x89" * decoded_bytes).decode()


def test_the_api_refuses_a_photo_over_the_configured_limit(redis_url: str, key_prefix: str) -> None:
    with live_api(redis_url, key_prefix, PROVISIONER_MAX_KYC_PHOTO_BYTES=LIMIT) as api:
        upstream = Upstream(api.url)
        try:
            big = approval("photo-api", kyc={**kyc_documents("Ann"), "face_photo": photo(20_001)})
            answer = upstream.post(big)
            assert answer.status_code == 422, answer.text
            assert answer.json()["field"] == "data.kyc.face_photo"
            assert "at most 20000 bytes" in answer.json()["reason"]
            fits = approval("photo-api", kyc={**kyc_documents("Ann"), "face_photo": photo(20_000)})
            assert upstream.post(fits).status_code == 202
        finally:
            upstream.close()


def test_intake_refuses_a_photo_over_the_configured_limit(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix, PROVISIONER_PROXY_KYC="true", PROVISIONER_MAX_KYC_PHOTO_BYTES=LIMIT)
    try:
        ev = events_for("photo-intake")
        approved = copy.deepcopy(ev["kyc"])
        approved["data"]["kyc"] = {**kyc_documents("Ann"), "front_photo": photo(30_000)}
        outcome = rig.app.intake.accept(json.dumps(approved))
        assert isinstance(outcome, Refused) and outcome.field == "data.kyc.front_photo"
        assert "at most 20000 bytes" in outcome.reason
    finally:
        rig.close()


@pytest.mark.parametrize("value", [str(MAX_PHOTO_BYTES + 1), "0", "lots"])
def test_the_setting_stays_within_what_kucoin_takes(value: str) -> None:
    with pytest.raises(SettingsError, match="PROVISIONER_MAX_KYC_PHOTO_BYTES"):
        Settings.from_env({"PROVISIONER_MAX_KYC_PHOTO_BYTES": value})
