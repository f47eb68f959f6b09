"""What the worker requires of the URLs it talks to, so that secrets never cross a network in the clear.

Issued API secrets, passphrases and KYC identity numbers travel to the exchange, and sealed records, queues and
locks to Redis. In every mode an exchange base URL must be ``http(s)://host[:port][/path]`` with no user info,
query, fragment, whitespace or control character (a base URL is joined with every request path: anything after the
path would corrupt each of them, and user info would ride along in clear). In production it must be ``https``.

Redis, in production, is ``rediss://`` (TLS, with the certificate and host-name checks left on), a ``unix://``
socket (no network), or ``redis://`` only with ``PROVISIONER_ALLOW_PLAINTEXT_REDIS=true``: the explicit opt-out
for a Redis on loopback or a sidecar reached over a private link.

Nothing here echoes a URL: it may hold the Redis password. ``redacted_url`` is what may be printed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["base_url_problems", "redacted_url", "redis_url_problems"]

_REDIS_NO_VERIFY = {"none", "optional"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


def _has_control_or_space(value: str) -> bool:
    return any(c.isspace() or not c.isprintable() for c in value)


def base_url_problems(name: str, url: str, *, production: bool) -> list[str]:
    """Why the exchange base URL ``url`` (the setting ``name``) is refused; empty when it is acceptable."""
    if _has_control_or_space(url):
        return [f"{name}: holds whitespace or a control character"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return [f"{name}: is not a URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{name}: expected http(s)://host[:port][/path]"]
    problems = []
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problems.append(f"{name}: must not carry user info (credentials travel in headers)")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        problems.append(f"{name}: must not carry a query or fragment")
    if production and parts.scheme != "https":
        problems.append(f"{name}: production talks to the exchange over https only")
    return problems


def redis_url_problems(url: str, *, production: bool, allow_plaintext: bool) -> list[str]:
    """Why ``REDIS_URL`` is refused (never echoing it); empty when it is acceptable."""
    if _has_control_or_space(url):
        return ["REDIS_URL: holds whitespace or a control character"]
    try:
        parts = urlsplit(url)
    except ValueError:
        return ["REDIS_URL: is not a URL"]
    if parts.scheme not in ("redis", "rediss", "unix"):
        return ["REDIS_URL: expected redis://, rediss:// or unix://"]
    if not production:
        return []
    problems = []
    if parts.scheme == "redis" and not allow_plaintext:
        problems.append(
            "REDIS_URL: production needs rediss:// (TLS) or unix://; for a Redis on loopback or a sidecar, set "
            "PROVISIONER_ALLOW_PLAINTEXT_REDIS=true"
        )
    query = {k.lower(): v.lower() for k, v in parse_qsl(parts.query)}
    if parts.scheme == "rediss" and query.get("ssl_cert_reqs") in _REDIS_NO_VERIFY:
        problems.append("REDIS_URL: production checks the Redis server's certificate (ssl_cert_reqs=required)")
    if parts.scheme == "rediss" and query.get("ssl_check_hostname") in _FALSE:
        problems.append("REDIS_URL: production checks that the certificate names the Redis host (ssl_check_hostname)")
    return problems


def redacted_url(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` query parameter) replaced by ``***``: safe
    to print. A URL that does not parse is replaced whole."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is not None:
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}")
    if any(k.lower() == "password" for k, _ in parse_qsl(parts.query)):
        query = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)
