"""What the dramatiq CLI loads in each worker process: ``dramatiq worker.runtime.entrypoint:setup``.

``setup`` reads the settings once, configures logging, builds the broker, actors and middleware, and makes the
broker dramatiq's global one. The process's app (Redis clients, HTTP pool) is built on first use, after fork.
``provisioner worker`` starts the CLI with the right flags; use it rather than calling dramatiq by hand.
"""

from __future__ import annotations

import dramatiq
import structlog

from worker.logs import configure_logging
from worker.runtime.broker import Runtime, build_runtime
from worker.settings import Settings

__all__ = ["setup"]

_runtime: Runtime | None = None


def setup() -> None:
    """Configure this worker process (called by the dramatiq CLI). Exits on a bad setting, naming it."""
    global _runtime  # noqa: PLW0603 - the CLI's contract: a callable that installs the global broker
    settings, defaulted = Settings.from_env()
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=[
            settings.secret(n)
            for n in ("api_secret", "api_passphrase", "broker_key", "trading_api_secret", "trading_api_passphrase")
        ],
    )
    if defaulted:
        structlog.get_logger(__name__).warning("development defaults in use", settings=defaulted)
    _runtime = build_runtime(settings)
    dramatiq.set_broker(_runtime.broker)
