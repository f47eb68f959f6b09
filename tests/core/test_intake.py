"""Intake stores each event once per id: an id reused with other content — KYC documents included — is refused,
never taken silently for a duplicate."""

from __future__ import annotations

import copy

from tests.core.harness import Rig, events_for, kyc_documents
from worker.intake import Accepted, Refused
from worker.store.customers import IngestResult


def test_an_approval_resent_under_its_id_with_other_kyc_documents_is_refused(redis_url: str, key_prefix: str) -> None:
    """Corrected KYC documents sent under the approval's old id would never reach KuCoin (the stored event is the
    same without them): intake says so instead of answering "duplicate"."""
    rig = Rig(redis_url, key_prefix, PROVISIONER_PROXY_KYC="true")
    try:
        ev = events_for("kyc-corrected")
        approval = copy.deepcopy(ev["kyc"])
        approval["data"]["kyc"] = kyc_documents("Ada")
        first = rig.app.intake.accept(approval)
        assert isinstance(first, Accepted) and first.result is IngestResult.NEW
        same = rig.app.intake.accept(copy.deepcopy(approval))
        assert isinstance(same, Accepted) and same.result is IngestResult.DUPLICATE

        corrected = copy.deepcopy(approval)
        corrected["data"]["kyc"] = kyc_documents("Adah")
        outcome = rig.app.intake.accept(corrected)
        assert isinstance(outcome, Refused), outcome
        assert outcome.field == "id" and "kyc" in outcome.reason.lower()
    finally:
        rig.close()
