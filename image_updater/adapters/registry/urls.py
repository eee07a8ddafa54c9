"""URL rules of the registry client: base URLs, loopback hosts, redaction and ``Link`` headers.

Pure functions; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlencode

import httpx

from image_updater.errors import RegistryError
from image_updater.model.ref import DOCKER_HUB, DOCKER_HUB_API_HOST

# Query parameters whose values are safe to show in errors and logs; every other value (signatures of
# pre-signed blob URLs, tokens, ...) is replaced.
_SAFE_QUERY_PARAMS = frozenset({"n", "last", "service", "scope", "digest"})
_REDACTED = "REDACTED"
_HUB_HOSTS = frozenset({DOCKER_HUB, "index.docker.io"})
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>\d+))?$")
_LINK = re.compile(r"<(?P<url>[^>]*)>(?P<params>[^<]*)")
_REL = re.compile(r"""(?:^|;)\s*rel\s*=\s*(?:"(?P<quoted>[^"]*)"|(?P<bare>[^;,\s]+))""", re.IGNORECASE)


def split_host_port(host: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets) into a lower-case host without brackets and a port."""
    match = _HOST_PORT.match(host.strip())
    if not match:
        raise RegistryError(f"invalid registry host {host!r}")
    port = match.group("port")
    return match.group("host").strip("[]").lower(), int(port) if port else None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (optionally with a port) is ``localhost``, in ``127.0.0.0/8`` or ``::1``."""
    try:
        name, _ = split_host_port(host)
    except RegistryError:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def base_url_for(host: str, *, insecure: bool = False) -> str:
    """The API base URL of a registry that has no configured ``api_url``.

    ``https://<host>``, with Docker Hub's aliases reached at ``registry-1.docker.io``; ``insecure``
    asks for plain ``http://`` (a registry known to speak only HTTP). It does not mean "skip TLS
    verification" (Argo CD Image Updater's ``insecure``): that is the client's ``verify`` argument.
    For a loopback host the client itself falls back to HTTP when HTTPS fails (see
    :class:`~image_updater.adapters.registry.client.RegistryClient`).
    """
    name, port = split_host_port(host)
    if name in _HUB_HOSTS and port is None:
        return f"https://{DOCKER_HUB_API_HOST}"
    scheme = "http" if insecure else "https"
    return f"{scheme}://{host.strip().lower()}"


def same_origin_host(a: httpx.URL, b: httpx.URL) -> bool:
    """Whether two URLs name the same host and port (the scheme may differ: see the HTTP fallback)."""
    return a.host.lower() == b.host.lower() and a.port == b.port


def redact_url(url: httpx.URL | str) -> str:
    """``url`` without userinfo, fragment and query values other than the harmless ones."""
    try:
        parsed = httpx.URL(str(url))
    except httpx.InvalidURL:
        return "<invalid URL>"
    text = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}{parsed.path}"
    if parsed.query:
        items = [
            (key, value if key.lower() in _SAFE_QUERY_PARAMS else _REDACTED)
            for key, value in parsed.params.multi_items()
        ]
        text += "?" + urlencode(items, safe=":/")
    return text


def next_link(headers: httpx.Headers) -> str | None:
    """The target of the first ``Link: <...>; rel="next"`` in ``headers``, as written (maybe relative).

    Several links may share one header and several ``Link`` headers may be present; ``rel`` may hold
    several space-separated relation types.
    """
    for value in headers.get_list("link"):
        for match in _LINK.finditer(value):
            rel = _REL.search(match.group("params"))
            if rel is None:
                continue
            relations = (rel.group("quoted") or rel.group("bare") or "").lower().split()
            if "next" in relations:
                return match.group("url").strip()
    return None
