"""Credentials in ``api_key.issued``: a JWE any language opens with the upstream's private key (EC P-256 or RSA),
the legacy Fernet token while migrating, and a public key only — a private one is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from handlers.records import SealedSecret
from tests.core.harness import Rig, events_for
from tests.webhooks.keys import key_pair, open_jwe
from worker.crypto import Keyring
from worker.delivery import CredentialSealer, DeliveryKeyError, RecipientKey
from worker.settings import Settings, SettingsError

CREDENTIALS = {"api_key": "k-1", "secret": "s3cret-value-xyz", "passphrase": "pass-phrase-abc"}
FERNET = "d1=ZGVsaXZlcnkta2V5LW5vdC1mb3ItcHJvZHVjdGlvbiE="


@pytest.mark.parametrize(("kind", "alg"), [("ec", "ECDH-ES+A256KW"), ("rsa", "RSA-OAEP-256")])
def test_jwe_round_trip_with_each_key_type(kind: str, alg: str) -> None:
    private, public = key_pair(kind)
    sealer = CredentialSealer(RecipientKey.parse(json.dumps(public)))
    sealed = sealer.seal(CREDENTIALS)
    assert set(sealed) == {"jwe"} and sealed["jwe"].count(".") == 4, "compact serialization: five parts"
    assert "s3cret" not in sealed["jwe"]
    header, plain = open_jwe(sealed["jwe"], private)
    assert plain == CREDENTIALS
    assert {k: header[k] for k in ("alg", "enc", "cty")} == {"alg": alg, "enc": "A256GCM", "cty": "application/json"}
    assert set(header) - {"alg", "enc", "cty", "kid"} == ({"epk"} if kind == "ec" else set())
    assert header["kid"] == RecipientKey.parse(json.dumps(public)).key.thumbprint()
    assert sealer.seal(CREDENTIALS)["jwe"] != sealed["jwe"], "a fresh content key every time"


def test_the_jwks_own_kid_is_used() -> None:
    _, public = key_pair("ec")
    recipient = RecipientKey.parse(json.dumps({**public, "kid": "upstream-2026-11", "use": "enc"}))
    assert recipient.kid == "upstream-2026-11"


@pytest.mark.parametrize(
    ("jwk", "says"),
    [
        ("not json", "not JSON"),
        ("[]", "expected a JWK object"),
        ('{"kty": "oct", "k": "AAAA"}', r"private members \(k\)"),
        ('{"kty": "EC", "crv": "P-384", "x": "a", "y": "b"}', "P-256"),
        ('{"kty": "OKP", "crv": "X25519", "x": "a"}', "kty RSA"),
    ],
)
def test_unfit_keys_are_refused(jwk: str, says: str) -> None:
    with pytest.raises(DeliveryKeyError, match=says):
        RecipientKey.parse(jwk)


def test_a_private_key_is_refused_the_worker_never_holds_it() -> None:
    for kind in ("ec", "rsa"):
        private, _ = key_pair(kind)
        with pytest.raises(DeliveryKeyError, match="public half only"):
            RecipientKey.parse(json.dumps(private))
        with pytest.raises(SettingsError, match="PROVISIONER_DELIVERY_JWK"):
            Settings.from_env({"PROVISIONER_DELIVERY_JWK": json.dumps(private)})


@pytest.mark.filterwarnings("ignore:Key size should be")
def test_a_small_rsa_key_or_another_use_is_refused() -> None:
    from joserfc.jwk import RSAKey

    small = RSAKey.generate_key(1024, private=True).as_dict(private=False)
    with pytest.raises(DeliveryKeyError, match="2048"):
        RecipientKey.parse(json.dumps(small))
    _, public = key_pair("ec")
    with pytest.raises(DeliveryKeyError, match='"use"'):
        RecipientKey.parse(json.dumps({**public, "use": "sig"}))
    with pytest.raises(DeliveryKeyError, match='"alg"'):
        RecipientKey.parse(json.dumps({**public, "alg": "RSA-OAEP-256"}))


def test_migration_modes() -> None:
    """Both set: the JWE and the legacy token side by side; only the keyring: the legacy token as before."""
    private, public = key_pair("ec")
    keyring = Keyring.parse(FERNET, name="PROVISIONER_DELIVERY_KEYS")
    both = CredentialSealer(RecipientKey.parse(json.dumps(public)), keyring)
    sealed = both.seal(CREDENTIALS)
    assert both.mode == "jwe+fernet" and set(sealed) == {"jwe", "key_id", "token"}
    assert open_jwe(sealed["jwe"], private)[1] == CREDENTIALS
    assert keyring.open(SealedSecret(key_id=sealed["key_id"], token=sealed["token"])) == CREDENTIALS
    legacy = CredentialSealer(None, keyring)
    assert legacy.mode == "fernet" and set(legacy.seal(CREDENTIALS)) == {"key_id", "token"}
    with pytest.raises(DeliveryKeyError):
        CredentialSealer(None, None)


def test_settings_choose_the_mode() -> None:
    """Nothing set (development): the development public key; production needs a key; the keyring alone still
    works (legacy), and both together migrate."""
    _, public = key_pair("ec")
    settings, defaulted = Settings.from_env({})
    assert settings.delivery_jwk and settings.delivery_keys is None and "PROVISIONER_DELIVERY_JWK" in defaulted
    with pytest.raises(SettingsError, match="PROVISIONER_DELIVERY_JWK"):
        Settings.from_env({"PROVISIONER_ENV": "production"})
    legacy, defaulted = Settings.from_env({"PROVISIONER_DELIVERY_KEYS": FERNET})
    assert legacy.delivery_jwk is None and "PROVISIONER_DELIVERY_JWK" not in defaulted
    both, _ = Settings.from_env({"PROVISIONER_DELIVERY_KEYS": FERNET, "PROVISIONER_DELIVERY_JWK": json.dumps(public)})
    assert both.delivery_jwk and both.delivery_keys


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[tuple[Rig, dict]]:
    private, public = key_pair("rsa")
    rig = Rig(redis_url, key_prefix, PROVISIONER_DELIVERY_JWK=json.dumps(public), PROVISIONER_DELIVERY_KEYS=FERNET)
    yield rig, private
    rig.close()


def test_the_stream_carries_the_jwe_of_the_issued_key(rig: tuple[Rig, dict]) -> None:
    """Migrating: the worker's api_key.issued on the stream opens, with the upstream's private key, to the key the
    exchange issued; the legacy token opens to the same."""
    r, private = rig
    ev = events_for("jwe-stream")
    (ref,) = r.publish(ev["created"], ev["kyc"])[:1]
    r.settle(ref)
    (issued,) = [e for e in r.outbound() if e["type"] == "api_key.issued"]
    _, plain = open_jwe(issued["credentials"]["jwe"], private)
    assert set(plain) == {"api_key", "secret", "passphrase"} and plain["api_key"] == issued["api_key"]
    assert r.key_works(plain["api_key"], plain["secret"], plain["passphrase"])
    legacy = r.app.delivery.legacy
    assert legacy is not None
    assert legacy.open(SealedSecret(key_id=issued["credentials"]["key_id"], token=issued["credentials"]["token"])) == (
        plain
    )
