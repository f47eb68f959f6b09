"""Outbound ids are deterministic (the same outcome, the same id: a receiver drops copies by it). The ones that
name the record's version (``api_key.updated``, ``provisioning.failed``) name what they say too: after a rollback
the versions restart from the snapshot's, and a different outcome at a version the upstream heard before must not
reuse that one's id (it would be dropped as its copy)."""

from __future__ import annotations

from handlers.records import CustomerRecord
from worker.provisioning.outbound import failed, key_updated


def _record(version: int) -> CustomerRecord:
    return CustomerRecord(ref="c0123456789abcdef0123", customer_id="alice", version=version)


def test_a_whitelist_update_names_its_content() -> None:
    a = key_updated(_record(6), "k1", ("General",), ("203.0.114.55",), 0)
    same = key_updated(_record(6), "k1", ("General",), ("203.0.114.55",), 99)
    b = key_updated(_record(6), "k1", ("General",), ("203.0.114.66",), 0)
    wider = key_updated(_record(6), "k1", ("General", "Spot"), ("203.0.114.55",), 0)
    assert a.id == same.id, "the same outcome, written again: the same id"
    assert len({a.id, b.id, wider.id}) == 3, "another whitelist or permissions at the same version: another id"
    assert a.id != key_updated(_record(7), "k1", ("General",), ("203.0.114.55",), 0).id


def test_a_failure_names_its_reason() -> None:
    a = failed(_record(6), "fund:x#0", "the exchange refused it: 400100", 0)
    assert a.id == failed(_record(6), "fund:x#0", "the exchange refused it: 400100", 5).id
    assert a.id != failed(_record(6), "fund:x#0", "the sub-account limit is reached", 0).id
