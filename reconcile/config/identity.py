"""One project, one identity: however its base URL is spelled.

The project lock and the config's duplicate-target check compare projects by this identity: the
project id, and the host lowercased (a trailing dot dropped, an IP address in one spelling), without
the default port, with a loopback host (`localhost`, `127.0.0.0/8`, `::1`) as one, and with the
regional host the SDKs derive from a long project id (`api.<id[1:5]>.descope.com`) as the default
host. Light: no network, no httpx.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

DEFAULT_HOST = "api.descope.com"
REGIONAL_ID_LENGTH = 32  # the SDKs use a regional host for project ids this long or longer
_DEFAULT_PORTS = {"https": 443, "http": 80}


def regional_host(project_id: str) -> str | None:
    """The SDKs' regional host for this project id (None for a short id: the default host)."""
    return f"api.{project_id[1:5].lower()}.descope.com" if len(project_id) >= REGIONAL_ID_LENGTH else None


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _address(host: str) -> str:
    """An IP address host in one spelling (`127.1`, `0x7f.0.0.1` and `2130706433` are 127.0.0.1 to
    the resolver; `::ffff:127.0.0.1` is IPv4); any other host as it is."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return host
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None or address.version == 4:
        return str(mapped or address)
    return f"[{address}]"


def canonical_project(base_url: str, project_id: str) -> str:
    """`host[:port][/path] project-id`, the same for every spelling of one project's address."""
    parts = urlsplit(base_url.strip() or f"https://{DEFAULT_HOST}")
    host = _address((parts.hostname or "").lower().rstrip("."))
    if is_loopback(host):
        host = "loopback"
    elif host == regional_host(project_id):
        host = DEFAULT_HOST
    try:
        port = parts.port
    except ValueError:
        port = None  # refused where the URL is checked; here it only needs to be stable
    shown_port = "" if port in (None, _DEFAULT_PORTS.get(parts.scheme.lower())) else f":{port}"
    return f"{host}{shown_port}{parts.path.rstrip('/')} {project_id}"
