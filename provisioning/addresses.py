"""The client's address, as every audit row and the login limits record it.

Behind a proxy, REMOTE_ADDR is the proxy's address; the proxy appends the address it saw to
X-Forwarded-For. That header is trusted only when the request itself comes from one of
TRUSTED_PROXIES (addresses or networks): anyone reaching gunicorn directly writes what they like in it.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies_parse(values: list[str]) -> list[Network]:
    """TRUSTED_PROXIES' entries as networks (a single address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {value!r} is not an address or a network ({exc}).") from None
    return networks


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address, proxies: list[Network]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_ip(request: HttpRequest | None) -> str:
    """The client's address: REMOTE_ADDR, unless that is a trusted proxy; then X-Forwarded-For is read
    from the right (each proxy appends the address it saw) and the first address that is not a trusted
    proxy is the client. What lies further left was written by the client itself and is never read. An
    entry that is not an address ends the walk at the last trusted hop, which is then the best we know."""
    if request is None:
        return ""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXIES
    if not _trusted(_address(remote), proxies):
        return remote
    client = remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for entry in reversed(forwarded):
        address = _address(entry)
        if address is None:
            return client
        client = str(address)
        if not _trusted(address, proxies):
            return client
    return client
