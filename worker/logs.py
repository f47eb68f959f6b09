"""Structured logging: structlog for our code, and dramatiq's (and every library's) stdlib logs routed through
the same processor chain. JSON in production, console on a terminal. A redaction processor removes anything
secret-like before any renderer sees it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

__all__ = ["REDACTED", "configure_logging", "redact_secrets", "register_secret"]

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(
    r"(secret|passphrase|password|passwd|token|credential|authorization|signature|api[-_]?sign|partner[-_]?sign"
    r"|broker[-_]?key|private|photo|identity[-_]?number|birth|first[-_]?name|last[-_]?name|kyc[-_]?doc"
    r"|expire[-_]?date|customer[-_]?id|^kyc$)",
    re.IGNORECASE,
)
"""Field names whose values are blanked: credentials, every KYC document field, and the upstream's customer id
(personal data: an e-mail address for some upstreams; logs name a customer by its reference)."""
_FORMATTED_FIELD = re.compile(
    r"""(?P<key>(?P<q>['"]?)(?<![A-Za-z0-9_-])(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?P=q)\s*[:=]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;)}\]{\[]+)"""
)
"""``name: value`` or ``name=value`` inside text (a dict's repr, JSON, a dramatiq message formatted into a line)."""
_SECRET_VALUES = [
    re.compile(r"gAAAAA[A-Za-z0-9_\-=]{20,}"),  # Fernet tokens
    re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+"),  # KYC photos
    re.compile(r"(?i)(KC-API-(?:SIGN|PASSPHRASE|PARTNER-SIGN)['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9+/=]{8,}"),
]
_known: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Remember secret values (our own credentials) so that they are redacted wherever they appear in a log."""
    _known.update(v for v in values if v and len(v) >= 6)


def _blank_formatted(match: re.Match[str]) -> str:
    if _SECRET_KEYS.search(match.group("name")):
        return match.group("key") + REDACTED
    return match.group(0)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if ":" in value or "=" in value:
            value = _FORMATTED_FIELD.sub(_blank_formatted, value)
        for pattern in _SECRET_VALUES:
            value = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, value)
        for known in _known:
            if known in value:
                value = value.replace(known, REDACTED)
        return value
    if isinstance(value, MutableMapping):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_secrets(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank every field whose name looks secret and every secret-looking value."""
    for key in list(event_dict):
        if key in ("level", "timestamp", "logger"):
            continue  # written by our own processors: nothing to blank
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _format_exception(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
    if "exception" in event_dict:
        event_dict["exception"] = _scrub(event_dict["exception"])
    return event_dict


def configure_logging(
    *, fmt: str = "auto", level: str = "INFO", stream: Any = None, secrets: Iterable[str | None] = ()
) -> None:
    """Configure structlog and the stdlib root logger once, at start-up. ``fmt`` is auto, json or console."""
    register_secret(*secrets)
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        redact_secrets,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        # filter_by_level first: a disabled level costs one comparison, not the whole chain
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _format_exception, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
