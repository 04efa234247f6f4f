"""Where webhooks may POST: the address policy every webhook URL passes, on save and again before each send."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class InvalidWebhookUrl(ValueError):
    """The URL may not be a webhook target (scheme, host, or an address the policy refuses)."""


class UnresolvableWebhookHost(InvalidWebhookUrl):
    """The host does not resolve right now: refused when saving, a retryable failure when sending."""


def validate_webhook_url(url: str) -> str:
    """The URL, stripped, if webhooks may POST to it; raises InvalidWebhookUrl saying why not.

    Only http/https with a host. Every address the host resolves to must be public, unless WEBHOOK_ALLOWED_HOSTS
    names the host or contains the address (or a network around it). Checked on save and again before every
    send, because DNS answers change. With WEBHOOK_ALLOWED_HOSTS_ONLY, only the hosts and networks listed there
    pass, and a host name not listed is refused without a DNS lookup (hosts without outside access, and tests).
    """
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidWebhookUrl(f"webhook URL must use http or https, not {parts.scheme or 'no scheme'!r}: {url!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidWebhookUrl(f"webhook URL has no host: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl(f"webhook URL has an invalid port: {url!r}") from None
    allowed_names, allowed_networks = _allowed_targets()
    if host in allowed_names:
        return url
    if settings.WEBHOOK_ALLOWED_HOSTS_ONLY:
        _check_listed_address(host, allowed_networks, url)
        return url
    for address in _resolve(host, port or (443 if parts.scheme.lower() == "https" else 80)):
        kind = _non_public_kind(address)
        if kind and not any(address in network for network in allowed_networks):
            raise InvalidWebhookUrl(
                f"webhook host {host!r} resolves to {address}, a {kind} address; "
                "add the host or address to WEBHOOK_ALLOWED_HOSTS to allow it"
            )
    return url


def _allowed_targets() -> tuple[set[str], list]:
    """WEBHOOK_ALLOWED_HOSTS split into host names and networks (a bare address is a one-address network)."""
    names, networks = set(), []
    for entry in settings.WEBHOOK_ALLOWED_HOSTS:
        entry = entry.strip().lower()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _check_listed_address(host: str, allowed_networks: list, url: str) -> None:
    """WEBHOOK_ALLOWED_HOSTS_ONLY: the host must be an address inside a listed network; names are not looked up."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        raise InvalidWebhookUrl(
            f"webhook host {host!r} is not in WEBHOOK_ALLOWED_HOSTS (WEBHOOK_ALLOWED_HOSTS_ONLY is on): {url!r}"
        ) from None
    if not any(address in network for network in allowed_networks):
        raise InvalidWebhookUrl(
            f"webhook address {address} is not in WEBHOOK_ALLOWED_HOSTS (WEBHOOK_ALLOWED_HOSTS_ONLY is on): {url!r}"
        )


def _resolve(host: str, port: int) -> set:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableWebhookHost(f"webhook host {host!r} does not resolve: {exc}") from exc
    return {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}


def _non_public_kind(address) -> str | None:
    """Why the address is off limits ("private", "loopback", …), or None for a public address."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    # Order matters: loopback, unspecified and link-local addresses also count as private.
    for kind, flagged in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flagged:
            return kind
    return None if address.is_global else "non-public"  # e.g. carrier-grade NAT 100.64.0.0/10
