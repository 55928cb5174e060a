"""The one HTTP request a delivery makes, guarded against server-side request forgery.

Every connection resolves the host, checks each address it got (no loopback, link-local, private,
multicast or reserved address unless the endpoint allows private ones), and connects to the
address it checked, so a DNS answer that changes between registration and delivery (rebinding)
cannot send a request inside the network. Redirects are not followed (http.client never does);
each attempt has a short timeout. HTTPS verifies the certificate against the URL's host name.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
MAX_RESPONSE_BYTES = 64 * 1024


class UnsafeUrl(ValueError):
    """A URL billhook will not send to: not http(s), or its host resolves to an address it may not reach."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    """The URL's parts; UnsafeUrl for anything but a plain http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme not in SCHEMES:
        raise UnsafeUrl("the URL must be http or https")
    if not parts.hostname:
        raise UnsafeUrl("the URL names no host")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL must not carry credentials")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve(host: str, port: int, *, allow_private: bool) -> list[tuple]:
    """The addresses to connect to, each checked; UnsafeUrl when none may be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"the host does not resolve ({exc.strerror})") from exc
    if not allow_private:
        refused = [info[4][0] for info in infos if not is_public(info[4][0])]
        if refused:
            # One private answer is enough to refuse: a rebinding answer mixes them.
            raise UnsafeUrl("the host resolves to a loopback, link-local or private address")
    return infos


def check_url(url: str, *, allow_private: bool) -> Target:
    target = parse_url(url)
    resolve(target.host, target.port, allow_private=allow_private)
    return target


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool, timeout: float) -> Response:
    """POST `body` to `url`; raises UnsafeUrl, or OSError / http.client errors for the network."""
    target = parse_url(url)
    infos = resolve(target.host, target.port, allow_private=allow_private)
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        connection.sock = sock  # already connected to the checked address
        host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header, "Content-Type": "application/json", "User-Agent": "billhook"},
        )
        response = connection.getresponse()
        return Response(response.status, response.read(MAX_RESPONSE_BYTES))
    finally:
        sock.close()
