"""Production refuses weak secrets and clear-text transport, naming the variable and never echoing the value."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.fernet import Fernet

from tests.webhooks.keys import key_pair
from worker.profiles import DEV_DEFAULT_API_SETTINGS, DEV_DEFAULT_SECRETS, Profile
from worker.sealing import generate_key_pair
from worker.settings import DEV_DELIVERY_JWK, DEV_WEBHOOK_SECRET, RETENTION_UNSET, Settings, SettingsError
from worker.wire import redacted_url


def _whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def _fernet_spec(key_id: str, raw: bytes) -> str:
    return f"{key_id}={base64.urlsafe_b64encode(raw).decode('ascii')}"


def strong_env(**extra: str) -> dict[str, str]:
    """A production environment that starts: every secret set, strong and distinct; TLS everywhere."""
    private, public = generate_key_pair("k1")
    _, jwk = key_pair("ec")
    env = {
        "PROVISIONER_ENV": "production",
        "REDIS_URL": "rediss://:redis-password-1234@redis.internal:6380/0",
        "KUCOIN_API_KEY": "6422da9c97b45100018c6e62",
        "KUCOIN_API_SECRET": "cde06451-dbed-4e1a-9b5d-2f5a1c7e8d90",
        "KUCOIN_API_PASSPHRASE": "Mgmt-pass-2026",
        "KUCOIN_BROKER_PARTNER": "ExamplePartner",
        "KUCOIN_BROKER_KEY": "9e08c4a1-7b2d-4f6e-8a3c-5d1b0e9f7a62",
        "KUCOIN_BROKER_NAME": "ExampleND",
        "KUCOIN_TRADING_API_KEY": "6422da9c97b45100018c6e99",
        "KUCOIN_TRADING_API_SECRET": "0f4b2c8e-3a6d-4b1f-9e7c-8d2a5b6c1e30",
        "KUCOIN_TRADING_API_PASSPHRASE": "Trade-pass-2026",
        "PROVISIONER_NAME_SECRET": base64.b64encode(os.urandom(32)).decode("ascii"),
        "PROVISIONER_ENCRYPTION_KEYS": "k1=" + Fernet.generate_key().decode("ascii"),
        "PROVISIONER_DELIVERY_JWK": json.dumps(jwk),
        "PROVISIONER_INTAKE_PRIVATE_KEYS": private,
        "PROVISIONER_INTAKE_PUBLIC_KEY": public,
        "PROVISIONER_EVENT_SIGNING_KEYS": "e1=" + base64.b64encode(os.urandom(32)).decode("ascii"),
        "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS": "1825",
    }
    if "PROVISIONER_INTAKE_PRIVATE_KEYS" in extra:  # the worker's default public key: the first private one's half
        del env["PROVISIONER_INTAKE_PUBLIC_KEY"]
    return {**env, **extra}


def refusal(env: dict[str, str], profile: Profile = Profile.WORKER) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env, profile=profile)
    return str(caught.value)


def test_a_strong_production_environment_starts() -> None:
    """The baseline every refusal below departs from by one variable."""
    settings, defaulted = Settings.from_env(strong_env())
    assert defaulted == []
    assert "redis-password-1234" not in repr(settings), "REDIS_URL (with its password) is kept out of repr"


@pytest.mark.parametrize("name", sorted(DEV_DEFAULT_SECRETS))
def test_every_development_default_is_refused_by_name(name: str) -> None:
    """Each worker secret set explicitly to its published development default stops production start-up."""
    value = DEV_DEFAULT_SECRETS[name]
    message = refusal(strong_env(**{name: value}))
    assert name in message and "development default" in message
    material = value.removeprefix("dev1=")  # the key id of a keyring may be named; its key never
    assert material not in message


def test_all_development_defaults_at_once_name_every_variable() -> None:
    """The whole development set (the issue's first case) is refused, every variable named in one message."""
    message = refusal(strong_env(**DEV_DEFAULT_SECRETS))
    for name in DEV_DEFAULT_SECRETS:
        assert name in message
        assert DEV_DEFAULT_SECRETS[name] not in message


def test_another_variables_development_default_is_refused_too() -> None:
    """A published default is refused wherever it appears, not only in its own variable."""
    value = DEV_DEFAULT_SECRETS["KUCOIN_BROKER_KEY"]
    message = refusal(strong_env(KUCOIN_API_SECRET=value))
    assert "KUCOIN_API_SECRET: is a published development default" in message and value not in message


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("KUCOIN_API_SECRET", " ", "whitespace"),
        ("KUCOIN_API_PASSPHRASE", " ", "whitespace"),
        ("PROVISIONER_NAME_SECRET", " ", "whitespace"),
        ("PROVISIONER_NAME_SECRET", "x", "at least 32 characters"),
        ("PROVISIONER_NAME_SECRET", "ab" * 20, "at least 32 characters"),
        ("KUCOIN_API_SECRET", "short-secret", "shorter than 16"),
        ("KUCOIN_BROKER_KEY", "short-broker", "shorter than 16"),
        ("KUCOIN_TRADING_API_PASSPHRASE", "abc123", "shorter than 7"),
        ("KUCOIN_API_SECRET", "cde06451 dbed-4e1a-9b5d-2f5a1c7e8d90", "holds whitespace"),
        ("KUCOIN_API_SECRET", "cde06451-dbed-4e1a-9b5d-2f5a1c7e8d9\x00", "control character"),
    ],
)
def test_blank_short_or_malformed_secrets_are_refused(name: str, value: str, reason: str) -> None:
    """A single space, a 1-character name secret, a low-variety one, a short KuCoin secret: refused by name."""
    message = refusal(strong_env(**{name: value}))
    assert name in message and reason in message
    if value.strip():
        assert value.strip() not in message


def test_an_all_zero_fernet_key_is_refused() -> None:
    message = refusal(strong_env(PROVISIONER_ENCRYPTION_KEYS=_fernet_spec("k1", bytes(32))))
    assert "PROVISIONER_ENCRYPTION_KEYS: key 'k1' has fewer than 16 distinct bytes" in message
    assert base64.urlsafe_b64encode(bytes(32)).decode() not in message


def test_a_text_key_is_refused() -> None:
    """A key that is a password spelled in 32 printable bytes, not random bytes."""
    spec = _fernet_spec("k1", b"our-company-encryption-key-2026!")
    message = refusal(strong_env(PROVISIONER_ENCRYPTION_KEYS=spec))
    assert "key 'k1' is printable text" in message and spec.partition("=")[2] not in message


def test_the_same_key_for_encryption_and_delivery_is_refused() -> None:
    key = Fernet.generate_key().decode("ascii")
    message = refusal(strong_env(PROVISIONER_ENCRYPTION_KEYS=f"k1={key}", PROVISIONER_DELIVERY_KEYS=f"d1={key}"))
    assert "PROVISIONER_DELIVERY_KEYS: key 'd1' is the same key as PROVISIONER_ENCRYPTION_KEYS key 'k1'" in message
    assert key not in message


def test_the_name_secret_must_differ_from_every_other_secret() -> None:
    env = strong_env()
    message = refusal({**env, "KUCOIN_API_SECRET": env["PROVISIONER_NAME_SECRET"]})
    assert "PROVISIONER_NAME_SECRET: equals KUCOIN_API_SECRET" in message
    assert env["PROVISIONER_NAME_SECRET"] not in message


def test_the_development_delivery_key_and_webhook_secret_are_refused() -> None:
    """Their private halves (or the secret itself) are published: refused even when set explicitly."""
    message = refusal(
        strong_env(
            PROVISIONER_DELIVERY_JWK=DEV_DELIVERY_JWK,
            PROVISIONER_WEBHOOK_URL="https://hooks.example.com/in",
            PROVISIONER_WEBHOOK_SECRET=DEV_WEBHOOK_SECRET,
        )
    )
    assert "PROVISIONER_DELIVERY_JWK: is the development key" in message
    assert "PROVISIONER_WEBHOOK_SECRET: secret 1 is a published development default" in message
    assert DEV_WEBHOOK_SECRET not in message


def test_the_api_profile_refuses_its_development_defaults() -> None:
    """The API's secrets: the development request-signing secret, intake public key and event-signing keys are
    refused too."""
    env = {
        "PROVISIONER_ENV": "production",
        "PROVISIONER_ALLOW_PLAINTEXT_REDIS": "true",
        "PROVISIONER_NAME_SECRET": strong_env()["PROVISIONER_NAME_SECRET"],
        **{k: v for k, v in DEV_DEFAULT_API_SETTINGS.items() if k != "PROVISIONER_NAME_SECRET"},
    }
    message = refusal(env, Profile.API)
    assert "PROVISIONER_API_SECRETS: secret 1 is a published development default" in message
    assert "PROVISIONER_INTAKE_PUBLIC_KEY: key 'dev1' is a published development default" in message
    assert "PROVISIONER_EVENT_SIGNING_KEYS: key 'dev1' is a published development default" in message
    assert DEV_DEFAULT_API_SETTINGS["PROVISIONER_API_SECRETS"] not in message
    good = {
        **env,
        "PROVISIONER_API_SECRETS": _whsec(),
        "PROVISIONER_INTAKE_PUBLIC_KEY": generate_key_pair()[1],
        "PROVISIONER_EVENT_SIGNING_KEYS": strong_env()["PROVISIONER_EVENT_SIGNING_KEYS"],
    }
    Settings.from_env(good, profile=Profile.API)


def test_development_mode_still_accepts_its_defaults() -> None:
    """The checks are production's: development starts with nothing set, and with weak values."""
    Settings.from_env({})
    Settings.from_env({"PROVISIONER_NAME_SECRET": "x", "KUCOIN_API_SECRET": " "})


@pytest.mark.parametrize("name", ["KUCOIN_BROKER_BASE_URL", "KUCOIN_SPOT_BASE_URL"])
def test_production_talks_to_the_exchange_over_https_only(name: str) -> None:
    message = refusal(strong_env(**{name: "http://api-broker.kucoin.com"}))
    assert f"{name}: production talks to the exchange over https only" in message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://user:hunter2secret@api.kucoin.com", "user info"),
        ("https://api.kucoin.com/?token=hunter2secret", "query or fragment"),
        ("https://api.kucoin.com/#hunter2secret", "query or fragment"),
        ("https://api.kucoin.com/\x7fhunter2secret", "control character"),
        ("https://api.kucoin.com/ hunter2secret", "whitespace"),
    ],
)
def test_a_base_url_with_user_info_query_fragment_or_control_characters_is_refused(url: str, reason: str) -> None:
    """In every mode: these would ride along with (or corrupt) every request; the URL is never echoed."""
    for env in (strong_env(KUCOIN_BROKER_BASE_URL=url), {"KUCOIN_BROKER_BASE_URL": url}):
        message = refusal(env)
        assert "KUCOIN_BROKER_BASE_URL" in message and reason in message
        assert "hunter2secret" not in message


def test_development_may_use_the_simulator_over_http() -> None:
    settings, _ = Settings.from_env({"KUCOIN_BROKER_BASE_URL": "http://127.0.0.1:8000"})
    assert settings.broker_base_url == "http://127.0.0.1:8000"


def test_production_redis_needs_tls_or_the_explicit_opt_out() -> None:
    """``redis://`` is refused (without echoing the password) unless PROVISIONER_ALLOW_PLAINTEXT_REDIS is set;
    ``unix://`` crosses no network; ``rediss://`` must keep its certificate check."""
    plain = "redis://:redis-password-1234@127.0.0.1:6379/0"
    message = refusal(strong_env(REDIS_URL=plain))
    assert "REDIS_URL: production needs rediss://" in message and "PROVISIONER_ALLOW_PLAINTEXT_REDIS" in message
    assert "redis-password-1234" not in message
    Settings.from_env(strong_env(REDIS_URL=plain, PROVISIONER_ALLOW_PLAINTEXT_REDIS="true"))
    Settings.from_env(strong_env(REDIS_URL="unix:///run/redis/redis.sock"))
    unchecked = "rediss://:redis-password-1234@redis.internal:6380/0?ssl_cert_reqs=none"
    message = refusal(strong_env(REDIS_URL=unchecked))
    assert "ssl_cert_reqs=required" in message and "redis-password-1234" not in message
    message = refusal(strong_env(REDIS_URL=unchecked.replace("ssl_cert_reqs=none", "ssl_check_hostname=false")))
    assert "ssl_check_hostname" in message and "redis-password-1234" not in message


def test_redacted_url_hides_the_redis_password() -> None:
    assert redacted_url("redis://:pw-123@h:6379/0") == "redis://:***@h:6379/0"
    assert redacted_url("rediss://user:pw-123@h:6380/1") == "rediss://user:***@h:6380/1"
    assert "pw-123" not in redacted_url("redis://h:6379/0?password=pw-123&db=2")
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_later_name_secret_versions_are_held_to_the_same_strength() -> None:
    """PROVISIONER_NAME_SECRETS: each version as strong as the name secret, unlike it, and parsed without echoing."""
    env = strong_env()
    weak = refusal({**env, "PROVISIONER_NAME_SECRETS": "2=tooshort-v2"})
    assert "PROVISIONER_NAME_SECRETS: version 2: needs at least 32 characters" in weak and "tooshort-v2" not in weak
    same = refusal({**env, "PROVISIONER_NAME_SECRETS": "2=" + env["PROVISIONER_NAME_SECRET"]})
    assert "version 2: equals PROVISIONER_NAME_SECRET" in same and env["PROVISIONER_NAME_SECRET"] not in same
    malformed = refusal({**env, "PROVISIONER_NAME_SECRETS": "1=abc-secret-value"})
    assert "PROVISIONER_NAME_SECRETS" in malformed and "version from 2 to 999" in malformed
    assert "abc-secret-value" not in malformed
    good = {**env, "PROVISIONER_NAME_SECRETS": "2=" + base64.b64encode(os.urandom(32)).decode("ascii")}
    settings, _ = Settings.from_env(good)
    assert list(settings.name_secret_versions()) == [2]
    api, _ = Settings.from_env({**good, "PROVISIONER_API_SECRETS": _whsec()}, profile=Profile.API)
    assert api.name_secrets is None, "the API derives refs only (version 1): it is not given later versions"


def test_a_pretty_printed_delivery_jwk_is_not_taken_for_a_control_character() -> None:
    """The JWK is JSON: a multi-line one (from a mounted file) is judged by its key, not its whitespace."""
    _, jwk = key_pair("ec")
    Settings.from_env(strong_env(PROVISIONER_DELIVERY_JWK=json.dumps(jwk, indent=2) + "\n"))


def test_the_event_signing_keys_are_required_and_held_to_key_strength() -> None:
    """Without the keys no event is taken: production names them when unset, refuses a text key or one shared with
    the intake keys, and never echoes a key; a malformed keyring is refused in every mode."""
    env = strong_env()
    del env["PROVISIONER_EVENT_SIGNING_KEYS"]
    assert "PROVISIONER_EVENT_SIGNING_KEYS" in refusal(env)
    text = base64.b64encode(b"The quick brown fox jumps over 1").decode("ascii")
    message = refusal(strong_env(PROVISIONER_EVENT_SIGNING_KEYS=f"e1={text}"))
    assert "PROVISIONER_EVENT_SIGNING_KEYS: key 'e1' is printable text" in message and text not in message
    private = strong_env()["PROVISIONER_INTAKE_PRIVATE_KEYS"]
    same_key = "e1=" + private.partition("=")[2]  # only the id renamed: a replace() could also hit the key's text
    shared = refusal(strong_env(PROVISIONER_INTAKE_PRIVATE_KEYS=private, PROVISIONER_EVENT_SIGNING_KEYS=same_key))
    assert "PROVISIONER_EVENT_SIGNING_KEYS: key 'e1' is the same key as PROVISIONER_INTAKE_PRIVATE_KEYS" in shared
    short = base64.b64encode(os.urandom(16)).decode("ascii")
    message = refusal({"PROVISIONER_EVENT_SIGNING_KEYS": f"e1={short}"})
    assert "PROVISIONER_EVENT_SIGNING_KEYS: key 'e1' must be 32 to 64 bytes" in message and short not in message


def test_a_worker_without_a_personal_data_retention_period_is_refused() -> None:
    """Production never keeps a closed customer's personal data indefinitely by omission: the worker (and every
    operator command, same profile) refuses to start without PROVISIONER_PERSONAL_DATA_RETENTION_DAYS, naming it
    and saying why, beside any missing secret; 0 (erase at the close) is a value. The API, which erases nothing,
    does not need it; development keeps its default (kept until `provisioner customer forget`)."""
    env = strong_env()
    del env["PROVISIONER_PERSONAL_DATA_RETENTION_DAYS"]
    message = refusal(env)
    assert message == RETENTION_UNSET
    assert "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS" in message and "legal" in message
    both = refusal({k: v for k, v in env.items() if k != "KUCOIN_API_SECRET"})
    assert "KUCOIN_API_SECRET" in both and "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS" in both
    assert "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS" in refusal(
        {**env, "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS": ""}
    )
    settings, _ = Settings.from_env(strong_env(PROVISIONER_PERSONAL_DATA_RETENTION_DAYS="0"))
    assert settings.personal_data_retention_days == 0
    api = {
        "PROVISIONER_ENV": "production",
        "PROVISIONER_ALLOW_PLAINTEXT_REDIS": "true",
        "PROVISIONER_NAME_SECRET": env["PROVISIONER_NAME_SECRET"],
        "PROVISIONER_API_SECRETS": _whsec(),
        "PROVISIONER_INTAKE_PUBLIC_KEY": generate_key_pair()[1],
        "PROVISIONER_EVENT_SIGNING_KEYS": env["PROVISIONER_EVENT_SIGNING_KEYS"],
    }
    assert Settings.from_env(api, profile=Profile.API)[0].personal_data_retention_days is None
    assert Settings.from_env({})[0].personal_data_retention_days is None
