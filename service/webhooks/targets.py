"""Where webhooks may be sent (SSRF protection), and the one HTTP session that sends them.

A target must be http(s) (https if required) and resolve only to public
addresses, checked when a subscription is created or changed and again before
every delivery. The session itself (requests-hardened) pins the connection to
an address it has checked, so DNS rebinding between the check and the connect
does not reach a private address either. Private, loopback and link-local
targets are allowed only when WEBHOOK_ALLOW_PRIVATE_TARGETS is set.

The session does not take settings from the environment on each request, as requests does
by default: a proxy (HTTP_PROXY, ...) would connect to the target in the pinned address's
place, and ~/.netrc would hand a host's credentials to whoever subscribes a URL on it.
A CA bundle named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is still used, read once at start
(re-reading the environment on every request was a third of a delivery's CPU time).
"""

import ipaddress
import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests_hardened import Config as HardenedConfig
from requests_hardened import HTTPSession
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES, InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from service.domain.errors import DomainError

__all__ = ["InvalidIPAddress", "TargetRejected", "check_target", "http_session", "is_public"]

USER_AGENT = "exportctl-webhooks/1.0 (+https://www.standardwebhooks.com/)"


class TargetRejected(DomainError):
    """A webhook URL the service will not send to (scheme, or a private address)."""

    def __init__(self, reason: str):
        super().__init__(f"Webhook URL rejected: {reason}", errors={"url": [reason]})
        self.reason = reason


def is_public(address: str) -> bool:
    """Global unicast, and not in a range requests-hardened blocks at connect time (NAT64, 6to4, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_global
        and not ip.is_multicast
        and not any(ip in network for network in EXTRA_BLOCKED_NET_RANGES if network.version == ip.version)
    )


def check_target(url: str, *, allow_private: bool, require_https: bool) -> None:
    """Raise TargetRejected unless `url` is an allowed webhook target right now."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise TargetRejected("not a valid URL") from exc
    allowed_schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed_schemes:
        raise TargetRejected(f"the scheme must be {' or '.join(allowed_schemes)}")
    if not host:
        raise TargetRejected("the URL has no host")
    if parts.username or parts.password:
        raise TargetRejected("credentials in the URL are not allowed")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(
            host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRejected(f"{host} does not resolve") from exc
    # An AF_INET/AF_INET6 sockaddr starts with the address as text (typeshed's union also has (int, bytes)).
    addresses = {str(info[4][0]) for info in infos}
    private = sorted(address for address in addresses if not is_public(address))
    if private:
        raise TargetRejected(
            f"{host} resolves to a non-public address ({', '.join(private)}); "
            "private, loopback and link-local targets are not allowed"
        )


class _PooledIPFilterAdapter(IPFilterAdapter):
    """requests-hardened's address-pinning adapter with a pool as large as the worker's concurrency."""

    def __init__(self, *, pool_maxsize: int, **kwargs):
        super().__init__(**kwargs)
        self.init_poolmanager(pool_maxsize, pool_maxsize)
        self._pool_connections = self._pool_maxsize = pool_maxsize


def http_session(config: Mapping) -> requests.Session:
    """One pooled session for every delivery: timeouts on, redirects never followed."""
    pool = max(4, int(config["WORKER_CONCURRENCY"]))
    timeout = (
        config["WEBHOOK_CONNECT_TIMEOUT"].total_seconds(),
        config["WEBHOOK_READ_TIMEOUT"].total_seconds(),
    )
    allow_private = bool(config["WEBHOOK_ALLOW_PRIVATE_TARGETS"])
    session = HTTPSession(
        HardenedConfig(
            ip_filter_enable=not allow_private,
            ip_filter_allow_loopback_ips=False,
            never_redirect=True,
            default_timeout=timeout,
            user_agent_override=USER_AGENT,
        )
    )
    session.trust_env = False
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    if allow_private:
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    else:
        session.mount("http://", _PooledIPFilterAdapter(pool_maxsize=pool, is_https_proto=False))
        session.mount("https://", _PooledIPFilterAdapter(pool_maxsize=pool, is_https_proto=True))
    return session
