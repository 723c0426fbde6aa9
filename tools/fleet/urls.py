"""What an input URL or address may be: a plain endpoint, valid as such, never a credential carrier.

Shared by the input schemas (JSON Schema `format`s, see schema.py) and the secrets check, so
the rule "no credentials in a URL" has one definition. Pure functions: each returns why a value
is wrong, or None.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

#: A query parameter whose name contains one of these carries a credential (`?token=…`, `api_key`,
#: `X-Amz-Signature`, `sig`, `access_token`, `password`).
_SECRET_PARAM = re.compile(r"(?i)token|secret|passw|pwd|api[-_]?key|access[-_]?key|auth|signature|^sig$|credential"
                           r"|session|^key$")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'`<>]+")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_IPV4_LIKE = re.compile(r"[0-9.]+\Z")


def credential_in_url(url: str) -> str | None:
    """Why `url` carries a credential, or None: a password in its userinfo, any userinfo on an
    http(s) URL (`https://TOKEN@host` is a token), a secret-looking query parameter. `ssh://git@`
    names a user, not a secret."""
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return None
    if password is not None:
        return "a password in the URL's userinfo (user:password@)"
    if username is not None and parts.scheme.lower() in ("http", "https"):
        return "a user or token in the URL's userinfo (…@host)"
    for key, _value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_PARAM.search(key):
            return f"a credential in the query parameter {key[:40]!r}"
    return None


def urls_in(text: str) -> list[str]:
    """Every scheme://… URL written in a text (a Helm value, a config line)."""
    return _URL.findall(text)


def host_problem(host: str) -> str | None:
    """Why `host` is neither an IP address nor an RFC 1123 host name, or None."""
    if not host:
        return "no host"
    if ":" in host or _IPV4_LIKE.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return f"{host[:60]!r} is not a valid IP address"
        return None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in name.split(".")):
        return f"{host[:60]!r} is not a valid host name"
    return None


def endpoint_problem(url: str) -> str | None:
    """Why `url` is not a usable endpoint (host, port, no credentials), or None."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError as exc:
        return f"not a valid URL ({str(exc)[:80]})"
    if port == 0:
        return "port 0"
    if any(ch.isspace() for ch in url):
        return "whitespace in the URL"
    return host_problem(host) or credential_in_url(url)


def cidr_problem(value: str) -> str | None:
    """Why `value` is not an IPv4 network in CIDR notation (network address, prefix ≤ 32), or None."""
    if "/" not in value:
        return "no /prefix"
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        return str(exc)[:120]
    return None
