"""Request guards for the dashboard's web server (server.py): against DNS rebinding and
against other origins on this machine.

Streamlit accepts any Host header, so a web page on another origin whose name is rebound
to 127.0.0.1 could read emails and start jobs through the dashboard. HostGuard answers 403
to every HTTP request, and closes every WebSocket upgrade, whose Host is not localhost, an
IP address (a page cannot rebind those: its origin would be the address itself) or a name
given in PHISHLENS_ALLOWED_HOSTS (or the bound address, when it is a name).

The Host check alone lets a page served from another local port (a dev server at
localhost:9999) open the dashboard's WebSocket: its Host is localhost. Streamlit's own
origin check compares host names only, and for a foreign one it looks up this machine's
external address over the network first (about 2 s a handshake, a request leaving the
machine each time). So the guard also refuses, at once and with no lookup, every WebSocket
upgrade and every state-changing request (anything but GET, HEAD, OPTIONS) whose Origin is
not the dashboard's own (scheme, host and port of the request itself) or one given in
PHISHLENS_ALLOWED_ORIGINS. Browsers send Origin on every WebSocket and every cross-origin
write; a request without one comes from a program, not a web page, and is let through.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable

LOOPBACK_NAMES = ("localhost",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(header: str | None) -> str | None:
    """The host part of a Host header ('[::1]:8501' → '::1'), lower-cased; None if malformed."""
    parsed = _host_and_port(header)
    return parsed[0] if parsed else None


def _host_and_port(header: str | None) -> tuple[str, str] | None:
    """(host, port) of a Host header, lower-cased, port '' when absent; None if malformed."""
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
    name = name.rstrip(".")
    return (name, port) if name else None


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


def canonical_origin(origin: str) -> str | None:
    """'scheme://host:port' with the scheme's default port made explicit, lower-cased; None for
    'null', an opaque or malformed origin."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    parsed = _host_and_port(rest)
    if parsed is None:
        return None
    name, port = parsed
    port = port or ("443" if scheme == "https" else "80")
    name = f"[{name}]" if ":" in name else name
    return f"{scheme}://{name}:{port}"


def is_own_origin(origin: str | None, host: str | None, scheme: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a request's Origin is the dashboard's own (same scheme, host and port as the request
    itself) or a configured one. No Origin at all: a program, not a web page, so allowed."""
    if origin is None:
        return True
    wanted = canonical_origin(origin)
    if wanted is None:  # "null" (sandboxed frames, file: pages) and anything malformed
        return False
    own = canonical_origin(f"{'https' if scheme in ('https', 'wss') else 'http'}://{host or ''}")
    return wanted == own or wanted in {canonical_origin(a) for a in allowed if a.strip()}


class HostGuard:
    """ASGI middleware: refuse requests for hosts not allowed, and WebSocket upgrades and writes
    from other origins; answered at once, before Streamlit sees them."""

    def __init__(self, app, names: Iterable[str] = (), origins: Iterable[str] = ()):
        self.app = app
        self.names = tuple(names)
        self.origins = tuple(origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1") or None
            origin = headers[b"origin"].decode("latin-1") if b"origin" in headers else None
            if not is_allowed_host(host, self.names):
                return await self._refuse(scope, send, f"PhishLens refuses requests for host {host!r}: open it as "
                                          f"http://localhost or by IP address, or add the name to "
                                          f"PHISHLENS_ALLOWED_HOSTS.\n")
            checks_origin = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
            if checks_origin and not is_own_origin(origin, host, scope.get("scheme", "http"), self.origins):
                return await self._refuse(scope, send, f"PhishLens refuses this request from origin {origin!r}: "
                                          f"only the dashboard's own pages may open its connection; add the "
                                          f"origin to PHISHLENS_ALLOWED_ORIGINS if it is yours.\n")
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, send, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = message.encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def configured_names() -> tuple[str, ...]:
    """PHISHLENS_ALLOWED_HOSTS (comma-separated) plus the bound address when it is a name."""
    names = [n for n in os.environ.get("PHISHLENS_ALLOWED_HOSTS", "").split(",") if n.strip()]
    bound = os.environ.get("PHISHLENS_HOST", "")
    if bound and bound not in ("0.0.0.0", "::"):
        names.append(bound)
    return tuple(names)


def configured_origins() -> tuple[str, ...]:
    """PHISHLENS_ALLOWED_ORIGINS (comma-separated, e.g. https://dash.lab.test behind a proxy)."""
    return tuple(o for o in os.environ.get("PHISHLENS_ALLOWED_ORIGINS", "").split(",") if o.strip())
