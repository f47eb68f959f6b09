"""What the dramatiq CLI loads in each worker process: ``dramatiq worker.runtime.entrypoint:setup``.

``setup`` reads the settings once, configures logging, builds the broker, actors and middleware, and makes the
broker dramatiq's global one. The process's app (Redis clients, HTTP pool) is built on first use, after fork.
``provisioner worker`` starts the CLI with the right flags; use it rather than calling dramatiq by hand.
"""

from __future__ import annotations

import os
import signal

import dramatiq
import structlog

from worker.logs import configure_logging
from worker.runtime.broker import Runtime, build_runtime
from worker.settings import Settings, ignored_proxy_variables

__all__ = ["setup"]

_runtime: Runtime | None = None


def setup() -> None:
    """Configure this worker process (called by the dramatiq CLI). Exits on a bad setting, naming it."""
    global _runtime  # noqa: PLW0603 - the CLI's contract: a callable that installs the global broker
    settings, defaulted = Settings.from_env()
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=settings.log_secrets(),
    )
    log = structlog.get_logger(__name__)
    if defaulted:
        log.warning("development defaults in use", settings=defaulted)
    if settings.delivery_jwk is None:
        log.warning(
            "credentials are delivered with the legacy Fernet keyring: set PROVISIONER_DELIVERY_JWK (the upstream's "
            "public key) and, once the upstream reads credentials.jwe, unset PROVISIONER_DELIVERY_KEYS"
        )
    ignored = ignored_proxy_variables(os.environ, settings)
    if ignored:
        log.warning("environment proxy variables are not used: set KUCOIN_HTTP_PROXY", variables=ignored)
    _runtime = build_runtime(settings, stop_on_state_lost=_stop_master)
    dramatiq.set_broker(_runtime.broker)


def _stop_master() -> None:
    """Ask the dramatiq master (this worker process's parent) to shut every worker down: the state was found lost.
    Its supervisor restarts ``provisioner worker``, which waits in its halted mode until an operator recovers."""
    os.kill(os.getppid(), signal.SIGTERM)
