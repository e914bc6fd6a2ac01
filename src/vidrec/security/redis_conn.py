"""Redis AUTH and TLS for every client vidrec builds (``RedisConfig``).

``connection_kwargs`` is what ``redis.Redis.from_url`` / ``RedisCluster.from_url`` take on top
of the URL: a password (``VIDREC_REDIS__PASSWORD``, from a Secret), an ACL user, and TLS
(``VIDREC_REDIS__TLS`` with an optional CA bundle). Settings override what the URL says, so
the URL can stay a plain ``redis://host:port`` in a ConfigMap while the password lives in a
Secret. A cluster client passes the same kwargs to every node it discovers.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from vidrec.config import RedisConfig


def connection_kwargs(cfg: RedisConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if cfg.password:
        kwargs["password"] = cfg.password
    if cfg.username:
        kwargs["username"] = cfg.username
    if cfg.tls:
        kwargs["ssl_cert_reqs"] = "required"
        if cfg.tls_ca_file:
            kwargs["ssl_ca_certs"] = cfg.tls_ca_file
    return kwargs


def tls_url(cfg: RedisConfig) -> str:
    """The URL with the ``rediss`` scheme when TLS is on (redis-py picks the SSL connection
    class from the scheme in ``from_url``; ``ssl=True`` alone does not switch it there)."""
    if cfg.tls and cfg.url.startswith("redis://"):
        return "rediss://" + cfg.url[len("redis://") :]
    return cfg.url


def client(cfg: RedisConfig, **extra: Any) -> redis.Redis | RedisCluster:
    """A standalone or cluster client for ``cfg`` with AUTH/TLS applied."""
    kwargs = connection_kwargs(cfg) | extra
    if cfg.cluster:
        return RedisCluster.from_url(tls_url(cfg), **kwargs)
    return redis.Redis.from_url(tls_url(cfg), **kwargs)
