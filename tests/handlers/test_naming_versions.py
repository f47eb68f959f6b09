"""Name-secret versions: new customers' sub-account names come from the newest version; every name, ref and clientOid
of an existing customer stays exactly what it was (a changed name would create a second sub-account)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from handlers import commands as c
from handlers.desired import fold
from handlers.naming import MAX_NAME_ATTEMPTS, Naming, NamingError
from handlers.planner import plan
from handlers.records import CustomerRecord
from tests.handlers.factory import POLICY, created

SECRET = "pinned-name-secret-for-the-golden-names"
V2 = "a-second-name-secret-for-new-customers-only"


@pytest.mark.parametrize("naming", [Naming(SECRET), Naming(SECRET, versions={2: V2})], ids=["v1 only", "v1+v2"])
def test_version_1_derivations_are_pinned(naming: Naming) -> None:
    """Golden values computed before versions existed: adding a version changes none of them."""
    ref = naming.customer_ref("cust-42")
    assert ref == "c0ddf644d1f2774663e31"
    assert [naming.account_name("cust-42", a) for a in (0, 1, 9)] == [
        "nd0epxoul75e44vsan4",
        "nd1shf2ibn2jb6jdl4b",
        "nd9ceufbpdz44nvkc3e",
    ]
    assert naming.account_name("cust-42", 0, version=1) == "nd0epxoul75e44vsan4"
    assert naming.funding_client_oid(ref, "ev-1#0", 0) == "f0b602a0d222abfeac28f96a022fe60b7659ad11e"
    assert naming.sweep_client_oid(ref, 1, 0) == "sd76e5883931eadfc359a657247c66afcc7404c63"
    assert naming.documents_digest("{}") == "d5f4160f9f6a825807f1abdd785d159280d9cd340"
    assert naming.refusal_digest("x") == "0b9ca2dfe03b759cfbc9f82a"
    assert naming.probe_account_name() == "ndprobe0hj53botlhq"


def test_a_new_version_gives_other_names_of_the_same_shape() -> None:
    naming = Naming(SECRET, versions={2: V2})
    assert naming.current_version == 2 and Naming(SECRET).current_version == 1
    new = naming.account_name("cust-42", 0, version=2)
    assert new != naming.account_name("cust-42", 0) and naming.is_account_name(new)
    assert len(naming.account_names("cust-42")) == 2 * MAX_NAME_ATTEMPTS
    assert {naming.account_name("cust-42", a, version=v) for v in (1, 2) for a in (0, 5)} <= naming.account_names(
        "cust-42"
    )
    with pytest.raises(NamingError, match="version 3"):
        naming.account_name("cust-42", 0, version=3)


def test_an_existing_record_keeps_its_version_1_name_after_version_2_is_added() -> None:
    """A record stored before versions existed (no ``name_version`` in its JSON) still asks for its v1 name."""
    stored = CustomerRecord.new("c0ddf644d1f2774663e31", "cust-42").model_dump(mode="json")
    del stored["name_version"]
    old = CustomerRecord.model_validate_json(json.dumps(stored))
    assert old.name_version == 1
    policy = replace(POLICY, naming=Naming(SECRET, versions={2: V2}))
    events = [e.model_copy(update={"customer_id": "cust-42"}) for e in [created()]]
    assert plan(fold(events), old, now_ms=100, policy=policy) == c.CreateSubAccount(
        account_name="nd0epxoul75e44vsan4", attempt=0
    )
    newer = CustomerRecord.new("c0ddf644d1f2774663e31", "cust-42", name_version=2)
    step = plan(fold(events), newer, now_ms=100, policy=policy)
    assert step == c.CreateSubAccount(account_name=policy.naming.account_name("cust-42", 0, version=2), attempt=0)
