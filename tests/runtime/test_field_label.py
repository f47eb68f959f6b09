"""The ``field`` label of ``provisioner_events_refused_total`` takes only values the contract names: a field name
that came from the input never becomes a time series."""

from __future__ import annotations

import pytest

from worker.runtime.metrics import field_label


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("$", "$"),
        ("type", "type"),
        ("customer_id", "customer_id"),
        ("data.funding.3.amount", "data.funding.amount"),
        ("data.ip_whitelist.0", "data.ip_whitelist"),
        ("data.kyc.face_photo", "data.kyc.face_photo"),
        ("surprise", "<other>"),
        ("data.x\\u202e\\n<script>AAAA...", "data.<other>"),
        ("data.funding.0.memo", "data.funding.<other>"),
        ("data.kyc.first_name.extra", "data.kyc.first_name.<other>"),
    ],
)
def test_a_refused_field_becomes_a_known_path_or_other(path: str, label: str) -> None:
    assert field_label(path) == label


def test_any_number_of_distinct_unknown_names_give_few_labels() -> None:
    labels = {field_label(f"data.name{i}") for i in range(1000)} | {field_label(f"x{i}") for i in range(1000)}
    assert labels == {"data.<other>", "<other>"}
