"""Which IP addresses a customer's trading key may be bound to: globally routable unicast addresses only.

An IP whitelist restricts who may use a key. An address that no customer can send from over the internet makes
the key useless at best, and at worst means something else than the customer intended: the unspecified address
(``0.0.0.0``, ``::``) may read as "any address", a loopback, private or link-local address (``169.254.169.254``
is the cloud metadata service) names a machine inside some network, multicast and broadcast name groups, not
hosts. The judgement uses the standard library's registry of special-purpose ranges (``ipaddress``'s
``is_unspecified``, ``is_loopback``, ``is_link_local``, ``is_multicast``, ``is_reserved``, ``is_private``,
``is_global``), not ranges of our own. ``is_private`` also covers the documentation ranges (``192.0.2.0/24``,
``198.51.100.0/24``, ``203.0.113.0/24``, ``2001:db8::/32``): no customer sends from them either.
"""

from __future__ import annotations

import ipaddress

__all__ = ["unroutable_reason"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def unroutable_reason(address: IpAddress) -> str | None:
    """Why ``address`` must not be bound to a trading key, or ``None`` if it may be (a global unicast address).
    An IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4) is judged by the IPv4 address it carries too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "is an IPv4-mapped IPv6 address; give the IPv4 address itself"
        if address.sixtofour is not None and (inner := unroutable_reason(address.sixtofour)) is not None:
            return f"is a 6to4 address of {address.sixtofour}, which {inner}"
    if address.is_unspecified:
        return "is the unspecified address (it may read as any address)"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address (169.254.0.0/16 and fe80::/10, cloud metadata services among them)"
    if address.is_multicast:
        return "is a multicast address"
    if address.is_reserved:
        return "is in a reserved range (the broadcast address 255.255.255.255 among them)"
    if address.is_private:
        return "is a private or special-purpose address (RFC 1918, unique local, documentation and the like)"
    if not address.is_global:
        return "is not a globally routable address (shared address space 100.64.0.0/10 and the like)"
    return None
