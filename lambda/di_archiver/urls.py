"""Where di-archiver may send a credential: validated before any request is built.

The JumpCloud key travels in every request header, so a typo, an empty override or a hostile
configuration must not send it in clear text or to the cloud's instance-metadata service.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from di_archiver.errors import SettingsError

# Instance-metadata endpoints (AWS IPv4 and IPv6, GCP/Azure names): never a DI API.
_METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_METADATA_IPS = (ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("169.254.169.254"))
# Only names every resolver answers from the hosts file; `*.localhost` may go to DNS.
_LOCAL_NAMES = frozenset({"localhost"})


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``name`` spells, in any form the system resolver accepts as one: dotted,
    but also ``2852039166``, ``0xa9fea9fe`` or ``169.254.43518`` (all 169.254.169.254)."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if not name or not all(c in "0123456789abcdefx." for c in name) or not name[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower().rstrip(".")
    if name in _LOCAL_NAMES:
        return True
    address = _address(name)
    return address is not None and address.is_loopback


def validate_api_url(url: str, *, setting: str) -> str:
    """``url`` if the credential may be sent there, else a SettingsError naming ``setting``.

    https only, except plain http to this machine (the bundled simulator); no link-local,
    unspecified or instance-metadata hosts; no user:password in the URL; never empty.
    """
    if not isinstance(url, str) or not url.strip():
        raise SettingsError(f"{setting} is empty; unset it to use the region's JumpCloud URL")
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise SettingsError(f"{setting} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise SettingsError(f"{setting} must be an https:// URL with a host name")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(f"{setting} must not carry a user name or password")
    if parts.query or parts.fragment:
        raise SettingsError(f"{setting} must not have a query string or fragment")
    loopback = is_loopback_host(host)
    if scheme == "http" and not loopback:
        raise SettingsError(
            f"{setting} uses plain http to {host}: the credential would cross the network in "
            "clear text; use https (plain http is allowed only to localhost, e.g. the simulator)"
        )
    name = host.lower().rstrip(".")
    if name in _METADATA_HOSTS:
        raise SettingsError(f"{setting} points at an instance-metadata service ({host})")
    address = _address(name)
    if address is None:
        return text
    if address in _METADATA_IPS or address.is_link_local or address.is_unspecified:
        raise SettingsError(
            f"{setting} points at a link-local or metadata address ({host}); the credential "
            "must only go to JumpCloud (or a simulator on localhost)"
        )
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        mapped = address.ipv4_mapped
        if mapped.is_link_local or mapped.is_unspecified:
            raise SettingsError(f"{setting} points at a link-local address ({host})")
    return text
