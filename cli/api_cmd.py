"""``provisioner api``: serve the HTTP API (uvicorn) in the foreground, with its metrics on their own port.

Settings are read with ``Profile.API``: Redis, ``PROVISIONER_NAME_SECRET``, ``PROVISIONER_API_SECRETS`` and
``PROVISIONER_INTAKE_PUBLIC_KEY`` are all it needs; exchange credentials and every key that opens what is sealed
are never read, even when the environment holds them.
"""

from __future__ import annotations

import click

from cli.context import warn_defaults
from worker.settings import Profile, Settings, SettingsError

__all__ = ["api_command", "keygen_command"]


def api_settings() -> Settings:
    """The API process's settings; warns about development defaults. Raises ``click.ClickException``."""
    try:
        settings, defaulted = Settings.from_env(profile=Profile.API)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    warn_defaults(defaulted, settings.log_level)
    return settings


@click.command("api")
@click.option("--host", help="Address to listen on [PROVISIONER_API_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="Port [PROVISIONER_API_PORT, default 8080].")
def api_command(host: str | None, port: int | None) -> None:
    """Serve the HTTP API: signed events in (POST /v1/events), the customer view out, /healthz and /readyz.
    Metrics on PROVISIONER_API_METRICS_HOST:PORT (default 127.0.0.1:9465)."""
    import uvicorn
    from prometheus_client import CollectorRegistry, start_http_server

    from api.app import create_app
    from api.bootstrap import build_services
    from worker.logs import configure_logging

    settings = api_settings()
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=[
            *(part for s in settings.secret("api_secrets").split(",") for part in (s.strip(), s.strip()[6:])),
            settings.secret("name_secret"),
        ],
    )
    registry = CollectorRegistry()
    try:
        services = build_services(settings, registry=registry)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    start_http_server(settings.api_metrics_port, addr=settings.api_metrics_host, registry=registry)
    uvicorn.run(
        create_app(services),
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        log_config=None,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
    )


@click.command("keygen")
@click.option("--key-id", default="k1", show_default=True, help="Id of the new intake key (letters and digits).")
def keygen_command(key_id: str) -> None:
    """Print a new intake key pair, a new request-signing secret and a new event-signing key, as environment lines.

    PROVISIONER_INTAKE_PRIVATE_KEYS goes to the workers only (put the new key first, keep the old one listed until
    nothing sealed to it is in flight); PROVISIONER_INTAKE_PUBLIC_KEY to the API; PROVISIONER_API_SECRETS to the API
    and to the upstream that signs its requests; PROVISIONER_EVENT_SIGNING_KEYS to the API, the workers and whoever
    runs `provisioner publish` (never to Redis; put the new key first, keep the old one listed until no message
    signed with it is queued or dead-lettered)."""
    import base64
    import secrets

    from worker.sealing import generate_key_pair

    if not key_id.isalnum() or len(key_id) > 32:
        raise click.BadParameter("letters and digits, at most 32", param_hint="--key-id")
    private, public = generate_key_pair(key_id)
    click.echo(f"PROVISIONER_INTAKE_PRIVATE_KEYS={private}")
    click.echo(f"PROVISIONER_INTAKE_PUBLIC_KEY={public}")
    click.echo(f"PROVISIONER_API_SECRETS=whsec_{base64.b64encode(secrets.token_bytes(32)).decode('ascii')}")
    click.echo(f"PROVISIONER_EVENT_SIGNING_KEYS={key_id}={base64.b64encode(secrets.token_bytes(32)).decode('ascii')}")
