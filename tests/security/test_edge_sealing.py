"""KYC documents sealed at the edge open only in the worker, only for their event; the API process holds no key
that opens anything; the old Fernet-sealed messages still open."""

from __future__ import annotations

import pytest

from worker.crypto import CryptoError
from worker.sealing import Envelope, IntakeKeys, IntakeSealer, generate_key_pair
from worker.settings import DEV_DEFAULT_API_SETTINGS, DEV_DEFAULT_SECRETS, Settings, SettingsError

DOCUMENTS = {"first_name": "Zelda", "identity_number": "P9988776655"}


def test_sealed_documents_open_with_the_private_key_for_their_event_only() -> None:
    private, public = generate_key_pair("k1")
    keys, sealer = IntakeKeys.parse(private, name="P"), IntakeSealer.parse(public, name="Q")
    envelope = sealer.seal(DOCUMENTS, event_id="evt-1")
    assert "Zelda" not in envelope.model_dump_json() and envelope.kid == "k1"
    assert keys.open(envelope, event_id="evt-1") == DOCUMENTS
    with pytest.raises(CryptoError):
        keys.open(envelope, event_id="evt-2")  # cut from one event and pasted into another
    tampered = envelope.ct[:-8] + ("A" * 8 if envelope.ct[-8:] != "A" * 8 else "B" * 8)
    with pytest.raises(CryptoError):
        keys.open(envelope.model_copy(update={"ct": tampered}), event_id="evt-1")
    with pytest.raises(CryptoError):
        IntakeKeys.parse(generate_key_pair("k1")[0], name="P").open(envelope, event_id="evt-1")
    with pytest.raises(CryptoError):
        keys.open(Envelope(alg=envelope.alg, kid="k9", ct=envelope.ct), event_id="evt-1")


def test_rotation_keeps_every_listed_private_key_opening() -> None:
    old_private, old_public = generate_key_pair("old")
    new_private, new_public = generate_key_pair("new")
    both = IntakeKeys.parse(f"{new_private.split('=', 1)[0]}={new_private.split('=', 1)[1]},{old_private}", name="P")
    for public in (old_public, new_public):
        sealer = IntakeSealer.parse(public, name="Q")
        assert both.opens(sealer)
        assert both.open(sealer.seal(DOCUMENTS, event_id="e"), event_id="e") == DOCUMENTS
    assert both.sealer().key_id == "new", "the first key is the one the worker's own publisher seals to"


def test_malformed_keys_and_a_public_key_that_matches_no_private_key_are_refused() -> None:
    for spec in ("", "k1", "k1=short", "k 1=" + "A" * 44, "k1=" + "A" * 43 + "=,k1=" + "A" * 43 + "="):
        with pytest.raises(CryptoError):
            IntakeKeys.parse(spec, name="PROVISIONER_INTAKE_PRIVATE_KEYS")
    env = {**DEV_DEFAULT_SECRETS, "PROVISIONER_INTAKE_PUBLIC_KEY": generate_key_pair("dev1")[1]}
    with pytest.raises(SettingsError, match="PROVISIONER_INTAKE_PUBLIC_KEY: is not the public half"):
        Settings.from_env(env)
    settings, _ = Settings.from_env({**DEV_DEFAULT_SECRETS, **DEV_DEFAULT_API_SETTINGS})
    assert settings.intake_public_key == DEV_DEFAULT_API_SETTINGS["PROVISIONER_INTAKE_PUBLIC_KEY"], "dev pair matches"


def test_webhook_secrets_are_checked_and_never_echoed() -> None:
    for bad in ("nope-not-a-secret", "whsec_@@@@", "whsec_c2hvcnQ=", "whsec_" + "QUFB" * 30):
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"PROVISIONER_API_SECRETS": bad})
        assert "PROVISIONER_API_SECRETS" in str(raised.value) and bad not in str(raised.value)
