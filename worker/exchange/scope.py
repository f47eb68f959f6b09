"""``CallScope``: what one exchange call needs to know about the work it serves, passed with the call.

httpx carries per-request options in ``request.extensions``; we carry ours in a ``CallScope`` given to
``KucoinHttp.call(..., scope=...)`` (or bound once to a view of the client with ``ExchangeClient.scoped``).
The reconciler builds one per step; the wire layer and the rate limiter read only what they are handed, never
ambient state.

========================  =====================================================================================
field                     read by, and what for
========================  =====================================================================================
``rate_key``              the limiter: a caller told to wait keeps its reserved slot under this key (a customer)
``urgent``                the limiter: revocations and offboarding take the urgent lane
``send_deadline``         the wire: a write is not sent after this ``time.monotonic()`` (customer lock may lapse)
``preadmission``          the limiter: the weight of the next request of one endpoint was taken ahead (once)
========================  =====================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["NO_SCOPE", "CallScope", "Preadmission"]


class Preadmission:
    """The weight of the next request to ``endpoint`` (a name), already taken from the limiter before its write
    intent was recorded: that request passes the limiter without counting again. It is used at most once, so
    a second request to the same endpoint in the same step counts as usual."""

    __slots__ = ("_used", "endpoint")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._used = False

    def take(self, endpoint: str) -> bool:
        """True, once, for a request to this preadmission's endpoint; False otherwise (and ever after)."""
        if self._used or endpoint != self.endpoint:
            return False
        self._used = True
        return True

    def __repr__(self) -> str:
        return f"Preadmission({self.endpoint!r}, used={self._used})"


@dataclass(frozen=True)
class CallScope:
    """Who an exchange call is for and under which constraints (see the module's table). The default scope is
    an anonymous, normal-lane call with no send deadline: a CLI read, the probe, the audit."""

    rate_key: str | None = None
    """Who is asking (a customer ref): a caller told to wait keeps its reserved slot under this key."""
    urgent: bool = False
    """The work is urgent (revocation, offboarding): the limiter's urgent lane."""
    send_deadline: float | None = None
    """``time.monotonic()`` after which a write must not be sent: set when its intent is recorded, to the moment
    the customer lock (renewed then) could expire before the request could finish. A process frozen between the
    two (GC, swap, SIGSTOP) then does not send into a customer another worker may already be settling."""
    preadmission: Preadmission | None = field(default=None, compare=False)
    """Weight taken ahead for the next request to one endpoint (``Preadmission``)."""


NO_SCOPE = CallScope()
"""The scope of a call made for no customer (one-off commands, probes, audits)."""
