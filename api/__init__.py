"""The HTTP API (``provisioner api``): a language-neutral, signed, durable way in for the broker's signup system.

Routes and problem answers in ``api.app``; the signature check in ``api.signing``; pure decisions (bodies,
statuses) in ``api.bodies`` and ``api.statuses``; the services it calls live in ``worker`` (admission, the
customer view), built by ``api.bootstrap``.
"""

from api.app import ApiServices, create_app

__all__ = ["ApiServices", "create_app"]
