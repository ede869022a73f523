"""Host check for the dashboard's web server (server.py): against DNS rebinding.

Streamlit accepts any Host header, so a web page on another origin whose name is rebound
to 127.0.0.1 could read emails and start jobs through the dashboard. HostGuard answers 403
to every HTTP request, and closes every WebSocket upgrade, whose Host is not localhost, an
IP address (a page cannot rebind those: its origin would be the address itself) or a name
given in PHISHLENS_ALLOWED_HOSTS (or the bound address, when it is a name).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable

LOOPBACK_NAMES = ("localhost",)


def host_name(header: str | None) -> str | None:
    """The host part of a Host header ('[::1]:8501' → '::1'), lower-cased; None if malformed."""
    if not header or any(c.isspace() or c in "/@?#\\" for c in header):
        return None
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1:] and not host[end + 1:].startswith(":")):
            return None
        name, port = host[1:end], host[end + 2:]
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def is_allowed_host(header: str | None, names: Iterable[str]) -> bool:
    """Whether a request for this Host header may be served: localhost, an IP literal, or a configured name."""
    name = host_name(header)
    if name is None:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in LOOPBACK_NAMES or name in {n.strip().lower().rstrip(".") for n in names if n.strip()}


class HostGuard:
    """ASGI middleware: refuse HTTP requests and WebSocket upgrades for hosts not allowed."""

    def __init__(self, app, names: Iterable[str] = ()):
        self.app = app
        self.names = tuple(names)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1") or None
            if not is_allowed_host(host, self.names):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = (f"PhishLens refuses requests for host {host!r}: open it as http://localhost or by "
                        f"IP address, or add the name to PHISHLENS_ALLOWED_HOSTS.\n").encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def configured_names() -> tuple[str, ...]:
    """PHISHLENS_ALLOWED_HOSTS (comma-separated) plus the bound address when it is a name."""
    names = [n for n in os.environ.get("PHISHLENS_ALLOWED_HOSTS", "").split(",") if n.strip()]
    bound = os.environ.get("PHISHLENS_HOST", "")
    if bound and bound not in ("0.0.0.0", "::"):
        names.append(bound)
    return tuple(names)
